package kafka

// Headers the edge sets on the records of a REST produce request that carries an Idempotency-Key (the IETF
// HTTP API draft's header): the key, and the record's index in the request as a decimal. The ingest stage
// drops a record whose key and index it has seen at an earlier offset of the same partition; the edge
// places a keyless record by the key, so every retry of the request reaches the same partition.
const (
	HeaderIdempotencyKey   = "minipipe.idempotency.key"
	HeaderIdempotencyIndex = "minipipe.idempotency.index"
)

// MaxIdempotencyKey is the longest Idempotency-Key taken, in bytes.
const MaxIdempotencyKey = 255
