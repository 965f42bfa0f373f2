def total(prices):
    result = sum(prices)


def count(prices):
    return len(prices)
