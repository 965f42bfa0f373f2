import unittest

from lists import first_n, last


class Bug(unittest.TestCase):
    def test_first_n(self):
        self.assertEqual(first_n([1, 2, 3, 4], 2), [1, 2])


class Kept(unittest.TestCase):
    def test_last(self):
        self.assertEqual(last([1, 2, 3]), 3)
