def append_item(item, items=[]):
    items.append(item)
    return items


def size(items):
    return len(items)
