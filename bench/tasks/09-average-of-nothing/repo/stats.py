def average(values):
    return sum(values) / len(values)


def maximum(values):
    return max(values)
