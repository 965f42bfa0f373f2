def count_words(text):
    return len(text.split(" "))


def shout(text):
    return text.upper() + "!"
