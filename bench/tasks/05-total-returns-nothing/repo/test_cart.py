import unittest

from cart import count, total


class Bug(unittest.TestCase):
    def test_total(self):
        self.assertEqual(total([1, 2, 3]), 6)


class Kept(unittest.TestCase):
    def test_count(self):
        self.assertEqual(count([1, 2]), 2)
