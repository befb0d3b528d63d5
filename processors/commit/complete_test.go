package commit

import (
	"testing"
	"time"

	"github.com/minipipe/minipipe/processors/envelope"
)

func TestEffectiveWatermark(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	lateness := time.Minute
	mark := func(q int32, ev, arrived time.Duration) envelope.Watermark {
		return envelope.Watermark{Source: envelope.Source{Topic: "t", Partition: q}, EventTime: ms(ev), Arrived: ms(arrived), Idle: -arrived > lateness}
	}
	cases := []struct {
		name  string
		first time.Duration // when the table was first heard of, relative to now
		n     int32
		marks []envelope.Watermark
		want  int64
		ok    bool
	}{
		{"every partition heard: the lowest", -time.Hour, 3, []envelope.Watermark{mark(0, -10*time.Minute, 0), mark(1, -5*time.Minute, 0), mark(2, -7*time.Minute, 0)}, ms(-10 * time.Minute), true},
		{"an idle partition does not hold back", -time.Hour, 2, []envelope.Watermark{mark(0, -50*time.Minute, -2*time.Minute), mark(1, -5*time.Minute, 0)}, ms(-5 * time.Minute), true},
		{"every partition idle: the highest", -time.Hour, 2, []envelope.Watermark{mark(0, -50*time.Minute, -2*time.Minute), mark(1, -40*time.Minute, -3*time.Minute)}, ms(-40 * time.Minute), true},
		{"a partition not heard from holds back at first", -30 * time.Second, 2, []envelope.Watermark{mark(0, -5*time.Minute, 0)}, 0, false},
		{"and not after the lateness", -2 * time.Minute, 2, []envelope.Watermark{mark(0, -5*time.Minute, 0)}, ms(-5 * time.Minute), true},
	}
	for _, c := range cases {
		src := &sourceMarks{n: c.n, parts: map[int32]envelope.Watermark{}}
		m := &tableMarks{first: now.Add(c.first), sources: map[string]*sourceMarks{"t": src}}
		for _, w := range c.marks {
			src.parts[w.Source.Partition] = w
		}
		got, ok := m.effective(now, lateness)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("%s: %v %v, want %v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
