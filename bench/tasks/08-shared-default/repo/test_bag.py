import unittest

from bag import append_item, size


class Bug(unittest.TestCase):
    def test_fresh_lists(self):
        self.assertEqual(append_item(1), [1])
        self.assertEqual(append_item(2), [2])


class Kept(unittest.TestCase):
    def test_size(self):
        self.assertEqual(size([1, 2]), 2)
