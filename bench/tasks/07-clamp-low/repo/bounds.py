def clamp(x, lo, hi):
    if x > lo:
        return lo
    if x > hi:
        return hi
    return x


def within(x, lo, hi):
    return lo <= x <= hi
