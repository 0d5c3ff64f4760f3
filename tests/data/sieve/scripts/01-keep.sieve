# RFC 5228 §4.3: an explicit keep; the implicit keep is cancelled.
keep;
