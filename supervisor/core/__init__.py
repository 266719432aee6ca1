"""Pure decisions and codecs: no I/O, nothing of ours imported but `errors`."""
