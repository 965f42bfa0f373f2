def is_adult(age):
    return age > 18


def is_child(age):
    return age < 13
