def user_email(user):
    return user["mail"]


def user_name(user):
    return user["name"]
