package layout

import (
	"strings"
	"testing"
	"time"
)

func TestPartitionValues(t *testing.T) {
	ny := "America/New_York"
	cases := []struct {
		name, spec, tz string
		ts             string // RFC 3339
		field          string
		want           string
	}{
		{"daily UTC", "daily", "", "2026-11-25T23:59:59.999Z", "", "dt=2026-11-25"},
		{"daily UTC, next day", "daily", "", "2026-11-26T00:00:00Z", "", "dt=2026-11-26"},
		{"daily from an offset time", "daily", "", "2026-11-25T20:00:00-05:00", "", "dt=2026-11-26"},
		{"hourly UTC", "hourly", "", "2026-11-25T07:30:00Z", "", "dt=2026-11-25/hr=07"},
		{"daily New York", "daily", ny, "2026-11-26T03:00:00Z", "", "dt=2026-11-25"},
		// DST starts in New York on 2026-03-08 at 02:00 local: 01:59 EST is followed by 03:00 EDT.
		{"before spring forward", "hourly", ny, "2026-03-08T06:59:00Z", "", "dt=2026-03-08/hr=01"},
		{"after spring forward", "hourly", ny, "2026-03-08T07:00:00Z", "", "dt=2026-03-08/hr=03"},
		// DST ends on 2026-11-01 at 02:00 local: the hour 01:xx happens twice and shares its partition.
		{"first 01:30", "hourly", ny, "2026-11-01T05:30:00Z", "", "dt=2026-11-01/hr=01"},
		{"second 01:30", "hourly", ny, "2026-11-01T06:30:00Z", "", "dt=2026-11-01/hr=01"},
		{"after fall back", "hourly", ny, "2026-11-01T07:00:00Z", "", "dt=2026-11-01/hr=02"},
		{"DST day spans 25 hours in one dt", "daily", ny, "2026-11-02T04:59:59Z", "", "dt=2026-11-01"},
		{"field", "field:country", "", "2026-11-25T00:00:00Z", "DE", "country=DE"},
		{"field escaped", "field:path", "", "2026-11-25T00:00:00Z", "a/../b=c", "path=a%2F..%2Fb%3Dc"},
		{"field null", "field:country", "", "2026-11-25T00:00:00Z", DefaultPartition, "country=__HIVE_DEFAULT_PARTITION__"},
		{"none", "none", "", "2026-11-25T00:00:00Z", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, err := ParseSpec(c.spec, c.tz)
			if err != nil {
				t.Fatal(err)
			}
			ts, err := time.Parse(time.RFC3339Nano, c.ts)
			if err != nil {
				t.Fatal(err)
			}
			if got := Path(spec.Values(ts, c.field)); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, bad := range []string{"weekly", "field:", "field:a-b", "field:1x"} {
		if _, err := ParseSpec(bad, ""); err == nil {
			t.Errorf("ParseSpec(%q) accepted", bad)
		}
	}
	if _, err := ParseSpec("daily", "Mars/Olympus"); err == nil {
		t.Error("unknown time zone accepted")
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	for _, v := range []string{"plain", "a/b", "..", "x=y", "100%", "tab\there", "ü", "#?*"} {
		e := Escape(v)
		for _, c := range []string{"/", "="} {
			if len(e) > 0 && containsStr(e, c) {
				t.Errorf("Escape(%q) = %q still holds %q", v, e, c)
			}
		}
		if Unescape(e) != v {
			t.Errorf("Unescape(Escape(%q)) = %q", v, Unescape(e))
		}
	}
}

func containsStr(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestFieldText(t *testing.T) {
	cases := map[string]any{"42": int64(42), "true": true, "1.5": 1.5, "0a0b": []byte{10, 11}, "x": "x", DefaultPartition: nil}
	for want, v := range cases {
		if got := FieldText(v); got != want {
			t.Errorf("FieldText(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestTableName(t *testing.T) {
	cases := map[string]string{"connect_test": "connect_test", "web.click-events": "web_click_events", "Orders": "orders"}
	for in, want := range cases {
		if got := TableName(in); got != want || !ValidTable(got) {
			t.Errorf("TableName(%q) = %q", in, got)
		}
	}
	for _, bad := range []string{"", "a/b", "..", "A", "a.b"} {
		if ValidTable(bad) {
			t.Errorf("ValidTable(%q)", bad)
		}
	}
}

func TestPartitionEnd(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	cases := []struct {
		spec   Spec
		values [][2]string
		want   time.Time
		ok     bool
	}{
		{Spec{Kind: Daily}, [][2]string{{"dt", "2026-11-28"}}, time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), true},
		{Spec{Kind: Hourly}, [][2]string{{"dt", "2026-11-28"}, {"hr", "23"}}, time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), true},
		{Spec{Kind: Hourly, Loc: berlin}, [][2]string{{"dt", "2026-11-28"}, {"hr", "10"}}, time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), true},
		{Spec{Kind: Field, Field: "x"}, [][2]string{{"x", "1"}}, time.Time{}, false},
		{Spec{Kind: Daily}, [][2]string{{"dt", "nonsense"}}, time.Time{}, false},
	}
	for _, c := range cases {
		got, ok := c.spec.End(c.values)
		if ok != c.ok || ok && !got.Equal(c.want) {
			t.Errorf("%v %v: %v %v, want %v %v", c.spec, c.values, got, ok, c.want, c.ok)
		}
	}
}

func TestHiddenPartitioningSpec(t *testing.T) {
	for _, tc := range []struct{ in, tz, str, transform, source, err string }{
		{in: "day(ts)", str: "day(ts)", transform: "day", source: "ts"},
		{in: "hour(event_time)", str: "hour(event_time)", transform: "hour", source: "event_time"},
		{in: "day(ts)", tz: "Europe/Berlin", err: "UTC"},
		{in: "day(ts)", tz: "Etc/UTC", str: "day(ts)", transform: "day", source: "ts"},
		{in: "day(1ts)", err: "FIELD"},
		{in: "day(ts", err: "FIELD"},
		{in: "week(ts)", err: "use daily"},
	} {
		s, err := ParseSpec(tc.in, tc.tz)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s (%s): %v, want an error about %s", tc.in, tc.tz, err, tc.err)
			}
			continue
		}
		if err != nil || s.String() != tc.str || s.Transform() != tc.transform || s.Source != tc.source {
			t.Errorf("%s: %+v %q %v", tc.in, s, s.Transform(), err)
		}
	}
	if got := (Spec{Kind: Hourly}).Columns(); len(got) != 2 {
		t.Errorf("hour(ts) tables keep dt and hr directories: %v", got)
	}
}
