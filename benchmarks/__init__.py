"""Side-by-side benchmark of charpipe against the book's own recipe."""
