package registry

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/lovoo/goka/storage"
)

// Two owners overlapping in a rebalance claim ids without seeing each other's claims. Every store applies
// the log in order and keeps the first claim of an id and of a schema, also after compaction (claims have
// keys of their own, so compaction keeps them all).
func TestFirstClaimWins(t *testing.T) {
	claim := func(id int, fp, nonce string) (string, []byte) {
		b, _ := json.Marshal(SchemaRecord{ID: id, Schema: `"string"`, Fingerprint: fp})
		return claimKey(id, nonce), b
	}
	type rec struct {
		key   string
		value []byte
	}
	var log []rec
	add := func(k string, v []byte) { log = append(log, rec{k, v}) }
	add(claim(1, "A", "x1"))
	add(claim(2, "B", "a1")) // owner a: id 2 for B
	add(claim(2, "C", "b1")) // owner b, not having seen a's: id 2 for C — loses
	add(claim(3, "B", "b2")) // owner b again: id 3 for B, which has id 2 already — loses
	add(claim(3, "C", "b3")) // owner b decides again: id 3 for C — wins
	legacy, _ := json.Marshal(SchemaRecord{ID: 4, Schema: `"int"`, Fingerprint: "D"})
	add(schemaKey(4), legacy) // written by an earlier version
	add(claim(4, "E", "c1"))  // loses to it

	check := func(t *testing.T, st storage.Storage) {
		t.Helper()
		want := map[int]string{1: "A", 2: "B", 3: "C", 4: "D"}
		for id, fp := range want {
			r, err := getSchemaRecord(st, id)
			if err != nil || r == nil || r.Fingerprint != fp {
				t.Fatalf("id %d: %+v %v, want %s", id, r, err, fp)
			}
		}
		for fp, id := range map[string]string{"A": "1", "B": "2", "C": "3", "D": "4"} {
			b, _ := st.Get(prefixFingerprint + fp)
			if string(b) != id {
				t.Fatalf("schema %s has id %s, want %s", fp, b, id)
			}
		}
		if b, _ := st.Get(prefixFingerprint + "E"); b != nil {
			t.Fatalf("a losing claim got an id: %s", b)
		}
		if max, _ := getInt(st, keyMaxID); max != 4 {
			t.Fatalf("max id %d", max)
		}
	}
	s := newStore(slog.New(slog.NewTextHandler(io.Discard, nil)))
	st := storage.NewMemory()
	for _, r := range log {
		if err := s.apply(st, r.key, r.value); err != nil {
			t.Fatal(err)
		}
	}
	check(t, st)
	// Compaction keeps the latest value of each key; claims' keys are unique, so a rebuilt store reads
	// the same claims in the same order and decides the same.
	latest := map[string]int{}
	for i, r := range log {
		latest[r.key] = i
	}
	rebuilt := storage.NewMemory()
	for i, r := range log {
		if latest[r.key] == i {
			if err := s.apply(rebuilt, r.key, r.value); err != nil {
				t.Fatal(err)
			}
		}
	}
	check(t, rebuilt)
}
