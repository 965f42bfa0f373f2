import unittest

from words import count_words, shout


class Bug(unittest.TestCase):
    def test_whitespace(self):
        self.assertEqual(count_words("one  two three"), 3)


class Kept(unittest.TestCase):
    def test_shout(self):
        self.assertEqual(shout("hi"), "HI!")
