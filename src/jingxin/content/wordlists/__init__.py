"""The default review lexicon shipped with jingxin (one word list per category)."""
