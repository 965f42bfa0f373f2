import unittest

from names import initials, normalize


class Bug(unittest.TestCase):
    def test_spaces(self):
        self.assertEqual(normalize("  Bob "), "bob")


class Kept(unittest.TestCase):
    def test_initials(self):
        self.assertEqual(initials("ada lovelace"), "AL")
