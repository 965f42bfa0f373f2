def normalize(name):
    return name.lower()


def initials(name):
    return "".join(part[0].upper() for part in name.split())
