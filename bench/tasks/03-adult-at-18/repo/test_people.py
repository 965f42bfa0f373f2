import unittest

from people import is_adult, is_child


class Bug(unittest.TestCase):
    def test_eighteen(self):
        self.assertTrue(is_adult(18))
        self.assertFalse(is_adult(17))


class Kept(unittest.TestCase):
    def test_child(self):
        self.assertTrue(is_child(12))
