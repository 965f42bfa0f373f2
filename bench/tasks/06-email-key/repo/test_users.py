import unittest

from users import user_email, user_name


class Bug(unittest.TestCase):
    def test_email(self):
        self.assertEqual(user_email({"name": "a", "email": "a@x.org"}), "a@x.org")


class Kept(unittest.TestCase):
    def test_name(self):
        self.assertEqual(user_name({"name": "a", "email": "a@x.org"}), "a")
