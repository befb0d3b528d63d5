// Package layout is the warehouse's layout, the model every stage and sink shares: table names, how a
// table is partitioned (daily, hourly, none or by a field), the Hive-style path of a partition and the
// directory of a table generation.
package layout

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Kind is a partitioning scheme.
type Kind int

// The partitioning schemes of --partition-by.
const (
	Daily Kind = iota
	Hourly
	None
	Field
)

// Spec is a table's partitioning: --partition-by daily|hourly|none|field:NAME, in a time zone (UTC by
// default; design §2 fixes dt as the UTC date unless a table says otherwise).
type Spec struct {
	Kind  Kind
	Field string
	Loc   *time.Location
	// Source is the timestamp field of a hidden partitioning, --partition-by day(FIELD) or hour(FIELD): daily or
	// hourly on that field's time in UTC (Iceberg tables partition by the transform of the field itself; Hive
	// tables get the dt and hr directories).
	Source string
}

// Transform is Iceberg's name of the spec's partition transform on Source ("day", "hour"), or "" when the
// partitioning is not hidden.
func (s Spec) Transform() string {
	if s.Source == "" {
		return ""
	}
	if s.Kind == Hourly {
		return "hour"
	}
	return "day"
}

// ParseSpec parses --partition-by and the time zone name ("" means UTC).
func ParseSpec(s, tz string) (Spec, error) {
	loc := time.UTC
	if tz != "" && !strings.EqualFold(tz, "UTC") {
		l, err := time.LoadLocation(tz)
		if err != nil {
			return Spec{}, fmt.Errorf("time zone %q: %w", tz, err)
		}
		loc = l
	}
	switch {
	case s == "daily" || s == "":
		return Spec{Kind: Daily, Loc: loc}, nil
	case s == "hourly":
		return Spec{Kind: Hourly, Loc: loc}, nil
	case s == "none":
		return Spec{Kind: None, Loc: loc}, nil
	case strings.HasPrefix(s, "day(") || strings.HasPrefix(s, "hour("):
		fn, rest, _ := strings.Cut(s, "(")
		f, ok := strings.CutSuffix(rest, ")")
		if !ok || !validColumn(f) {
			return Spec{}, fmt.Errorf("--partition-by %s: want %s(FIELD), FIELD a timestamp field's name", s, fn)
		}
		if _, off := time.Date(2026, 1, 1, 0, 0, 0, 0, loc).Zone(); off != 0 || loc.String() != "UTC" && loc.String() != "Etc/UTC" {
			return Spec{}, fmt.Errorf("--partition-by %s: Iceberg's %s transform is in UTC; drop --timezone %s or use --partition-by daily/hourly", s, fn, loc)
		}
		kind := Daily
		if fn == "hour" {
			kind = Hourly
		}
		return Spec{Kind: kind, Loc: time.UTC, Source: f}, nil
	case strings.HasPrefix(s, "field:"):
		f := strings.TrimPrefix(s, "field:")
		if !validColumn(f) {
			return Spec{}, fmt.Errorf("--partition-by field:%s: a field name is [A-Za-z_][A-Za-z0-9_]*", f)
		}
		return Spec{Kind: Field, Field: f, Loc: loc}, nil
	}
	return Spec{}, fmt.Errorf("--partition-by %q: use daily, hourly, day(FIELD), hour(FIELD), none or field:NAME", s)
}

func validColumn(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func (s Spec) String() string {
	zone := ""
	if s.Loc != nil && s.Loc != time.UTC {
		zone = " (" + s.Loc.String() + ")"
	}
	if s.Source != "" {
		return s.Transform() + "(" + s.Source + ")"
	}
	switch s.Kind {
	case Hourly:
		return "hourly" + zone
	case None:
		return "none"
	case Field:
		return "field:" + s.Field
	}
	return "daily" + zone
}

// Columns are the partition columns, in order; they come after the data columns.
func (s Spec) Columns() []string {
	switch s.Kind {
	case Daily:
		return []string{"dt"}
	case Hourly:
		return []string{"dt", "hr"}
	case Field:
		return []string{s.Field}
	}
	return nil
}

// NeedsTime reports whether the partition depends on the row's timestamp.
func (s Spec) NeedsTime() bool { return s.Kind == Daily || s.Kind == Hourly }

// Values are a row's partition values: from its timestamp for daily and hourly partitioning, from the
// field value (see FieldText) for field partitioning.
func (s Spec) Values(ts time.Time, field string) [][2]string {
	switch s.Kind {
	case Daily:
		t := ts.In(s.loc())
		return [][2]string{{"dt", t.Format("2006-01-02")}}
	case Hourly:
		t := ts.In(s.loc())
		return [][2]string{{"dt", t.Format("2006-01-02")}, {"hr", t.Format("15")}}
	case Field:
		return [][2]string{{s.Field, field}}
	}
	return nil
}

// End is the end of the time range a daily or hourly partition covers, from its values; false for other
// partitionings (or values that are not a time).
func (s Spec) End(values [][2]string) (time.Time, bool) {
	_, end, ok := s.Span(values)
	return end, ok
}

// Span is the time range [start, end) a daily or hourly partition covers, from its values; false for other
// partitionings (or values that are not a time).
func (s Spec) Span(values [][2]string) (start, end time.Time, ok bool) {
	get := func(col string) string {
		for _, kv := range values {
			if kv[0] == col {
				return kv[1]
			}
		}
		return ""
	}
	switch s.Kind {
	case Daily:
		d, err := time.ParseInLocation("2006-01-02", get("dt"), s.loc())
		if err != nil {
			return time.Time{}, time.Time{}, false
		}
		return d, d.AddDate(0, 0, 1), true
	case Hourly:
		d, err := time.ParseInLocation("2006-01-02 15", get("dt")+" "+get("hr"), s.loc())
		if err != nil {
			return time.Time{}, time.Time{}, false
		}
		return d, d.Add(time.Hour), true
	}
	return time.Time{}, time.Time{}, false
}

func (s Spec) loc() *time.Location {
	if s.Loc == nil {
		return time.UTC
	}
	return s.Loc
}

// DefaultPartition is the value Hive gives a null or empty partition value.
const DefaultPartition = "__HIVE_DEFAULT_PARTITION__"

// FieldText renders a field value as a partition value: integers in decimal, booleans as true/false,
// floats in their shortest form, bytes in hex, nil as Hive's default partition.
func FieldText(v any) string {
	switch x := v.(type) {
	case nil:
		return DefaultPartition
	case string:
		if x == "" {
			return DefaultPartition
		}
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		return strconv.FormatBool(x)
	case float64:
		if math.IsNaN(x) {
			return "NaN"
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []byte:
		return hex.EncodeToString(x)
	}
	return fmt.Sprint(v)
}

// Path renders partition values as a Hive-style relative path, dt=2026-11-25/hr=07, escaping values the
// way Hive does (FileUtils.escapePathName) so that no value can make a path component of its own.
func Path(values [][2]string) string {
	parts := make([]string, len(values))
	for i, kv := range values {
		parts[i] = kv[0] + "=" + Escape(kv[1])
	}
	return strings.Join(parts, "/")
}

// Escape escapes a partition value as Hive does: %XX for characters that mean something in a path or a
// URI, and for control characters.
func Escape(v string) string {
	if v == "" {
		return DefaultPartition
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c == 0x7f || strings.IndexByte("\"#%'*/:=?\\{[]^", c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Unescape reverses Escape.
func Unescape(v string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+2 < len(v) {
			if n, err := strconv.ParseUint(v[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// TableName is the table a topic feeds: lower case, every character outside [a-z0-9_] turned into '_'
// (connect_test → connect_test, web.click-events → web_click_events).
func TableName(topic string) string {
	b := []byte(strings.ToLower(topic))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// ValidTable reports whether a name can be a table (and a directory): [a-z0-9_], 1 to 128 characters.
func ValidTable(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Location is the directory of a table's generation in the warehouse: the table's name for the first
// generation, name.gN for the ones replays build.
func Location(table string, gen int) string {
	if gen <= 1 {
		return table
	}
	return table + ".g" + strconv.Itoa(gen)
}
