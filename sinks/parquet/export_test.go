package parquet

// DictionaryPays is dictionaryPays, for tests.
var DictionaryPays = dictionaryPays

// Batches is the number of record batches the writer handed to its encoder.
func (w *Writer) Batches() int { return w.batches }
