"""Card fraud: card transactions scored against card, merchant and device features."""
