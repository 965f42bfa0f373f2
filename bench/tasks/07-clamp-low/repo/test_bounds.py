import unittest

from bounds import clamp, within


class Bug(unittest.TestCase):
    def test_clamp(self):
        self.assertEqual(clamp(5, 0, 10), 5)
        self.assertEqual(clamp(-1, 0, 10), 0)
        self.assertEqual(clamp(11, 0, 10), 10)


class Kept(unittest.TestCase):
    def test_within(self):
        self.assertTrue(within(5, 0, 10))
