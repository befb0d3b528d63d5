package state

import (
	"fmt"
	"testing"
)

func TestStore(t *testing.T) {
	dir := t.TempDir()
	s, err := Builder(dir, Options{})("topic", 3)
	if err != nil {
		t.Fatal(err)
	}
	if o, err := s.GetOffset(-2); err != nil || o != -2 {
		t.Fatalf("empty offset: %d %v", o, err)
	}
	for i := 0; i < 10; i++ {
		if err := s.Set(fmt.Sprintf("k/%02d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Set("other", []byte("x"))
	_ = s.Set("empty", nil)
	if err := s.SetOffset(41); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("k/05"); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get("k/03"); string(v) != "3" {
		t.Fatalf("get: %q", v)
	}
	if v, _ := s.Get("k/05"); v != nil {
		t.Fatalf("deleted key: %q", v)
	}
	if ok, _ := s.Has("empty"); !ok {
		t.Fatal("an empty value is still a value")
	}
	count := func(it interface {
		Next() bool
		Key() []byte
		Release()
	}) (n int, keys []string) {
		defer it.Release()
		for it.Next() {
			n++
			keys = append(keys, string(it.Key()))
		}
		return
	}
	it, _ := s.Iterator()
	if n, keys := count(it); n != 11 {
		t.Fatalf("iterator saw %d keys (%v); the offset key must be hidden", n, keys)
	}
	it, _ = s.IteratorWithRange([]byte("k/"), nil)
	if n, _ := count(it); n != 9 {
		t.Fatalf("prefix iterator saw %d", n)
	}
	it, _ = s.IteratorWithRange([]byte("k/02"), []byte("k/04"))
	if n, _ := count(it); n != 2 {
		t.Fatalf("range iterator saw %d", n)
	}
	it, _ = s.IteratorWithRange([]byte("k/"), nil)
	if !it.Seek([]byte("k/06")) || !it.Next() || string(it.Key()) != "k/06" {
		t.Fatalf("seek: %q", it.Key())
	}
	it.Release()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("k/01"); err == nil {
		t.Fatal("use after close must fail")
	}
	s2, err := Open(dir+"/topic.3", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if o, _ := s2.GetOffset(-2); o != 41 {
		t.Fatalf("offset after reopen: %d", o)
	}
	if _, err := Builder(dir, Options{})("../escape", 0); err == nil {
		t.Fatal("a topic name must not escape the state directory")
	}
}
