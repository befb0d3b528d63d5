package parquet

// DictionaryPays is dictionaryPays, for tests.
var DictionaryPays = dictionaryPays

// Batches is the number of record batches the writer handed to its encoder.
func (w *Writer) Batches() int { return w.batches }

// TriedDictionary says whether the writer asked arrow-go for a dictionary on the column path.
func (w *Writer) TriedDictionary(path string) bool { return w.plan[path] != choosePlain }
