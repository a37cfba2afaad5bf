def main():
    items = []
    items.append(items)
    return items
