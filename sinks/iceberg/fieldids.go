package iceberg

// Field ids. Iceberg finds a data file's columns by id, which survives a rename; minipipe's Parquet files
// carry each column's id (the Parquet field_id, nested fields too) as the table numbers it, resolved before
// the file's first row (FieldIDs). A file written while the catalog could not be reached has none, and
// readers find its columns through the table's name mapping, which minipipe keeps.
//
// A column another engine renamed keeps its old name in the name mapping (Iceberg adds the new name beside
// the old one). minipipe resolves the names of its records through it, as Iceberg's Kafka Connect sink does:
// the stream's field still lands in the renamed column, which is not added again under the old name.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/hive"
	"github.com/minipipe/minipipe/sinks/manifest"
)

// FieldIDs returns cols (a file's columns) with each field's Iceberg field id in its metadata
// (PARQUET:field_id, which pqarrow writes into the file), as f's table numbers them. The table is created,
// or given the columns it lacks, first: the same change the file's commit would make. An error leaves the
// file without ids (readers then use the name mapping); so does a file of a generation not current yet.
func (c *Catalog) FieldIDs(ctx context.Context, f manifest.File, location string, cols *arrow.Schema) (*arrow.Schema, error) {
	if err := hive.ValidName(f.Table); err != nil {
		return nil, err
	}
	if c.cfg.Generation != nil {
		cur, err := c.cfg.Generation(f.Table)
		if err != nil {
			return nil, fmt.Errorf("current generation of %s: %w", f.Table, err)
		}
		if f.Generation != 0 && f.Generation != cur {
			return nil, fmt.Errorf("generation %d of table %s is not the one in the catalog (%d) yet", f.Generation, f.Table, cur)
		}
	}
	sch, err := icebergSchema(cols)
	if err != nil {
		return nil, err
	}
	spec := c.spec(f, sch)
	tbl, err := c.ensure(ctx, f.Table, location, spec, []*iceberg.Schema{sch})
	if err != nil {
		return nil, fmt.Errorf("iceberg table %s.%s: %w", c.cfg.Database, f.Table, err)
	}
	numbered, err := withFieldIDs(cols, tbl.Schema(), tbl.NameMapping(), false)
	if err != nil {
		return nil, err
	}
	md := numbered.Metadata()
	keys, values := append(slices.Clone(md.Keys()), metaTableUUID), append(slices.Clone(md.Values()), tbl.Metadata().TableUUID().String())
	meta := arrow.NewMetadata(keys, values)
	return arrow.NewSchema(numbered.Fields(), &meta), nil
}

// metaTableUUID is the numbered columns' schema metadata naming the table that numbered them (Changes
// records it with the file).
const metaTableUUID = "minipipe.iceberg.table-uuid"

// level is one struct of a table's schema, with the name mapping's entries for its fields.
type level struct {
	fields  []iceberg.NestedField
	mapping []iceberg.MappedField
}

// match is what a record's field is at a level: the table's field nf (ok), found by its present name
// (exact) or by an old one; sub is the mapping's entries inside it.
type match struct {
	nf    iceberg.NestedField
	sub   []iceberg.MappedField
	exact bool
	ok    bool
}

// resolve finds the table's field of each of a record's fields (in) at a level: the field of that name,
// else the field whose old names (in the name mapping) include it — only when that field's present name is
// not a field of the record too, the types agree, and no other field of the record resolves to it (each is
// then a new column).
func (l level) resolve(in []iceberg.NestedField) []match {
	names := make(map[string]bool, len(in))
	for _, f := range in {
		names[f.Name] = true
	}
	out := make([]match, len(in))
	byID := map[int][]int{}
	for i, f := range in {
		m := l.find(f.Name, names)
		if m.ok && !m.exact && !sameKind(f.Type, m.nf.Type) {
			m.ok = false
		}
		if m.ok {
			out[i] = m
			byID[m.nf.ID] = append(byID[m.nf.ID], i)
		}
	}
	for _, is := range byID {
		if len(is) > 1 {
			for _, i := range is {
				if !out[i].exact {
					out[i].ok = false
				}
			}
		}
	}
	return out
}

func (l level) find(name string, names map[string]bool) match {
	for _, f := range l.fields {
		if f.Name == name {
			return match{nf: f, sub: l.sub(f.ID), exact: true, ok: true}
		}
	}
	for _, m := range l.mapping {
		if m.FieldID == nil || !slices.Contains(m.Names, name) {
			continue
		}
		for _, f := range l.fields {
			if f.ID == *m.FieldID && !names[f.Name] {
				return match{nf: f, sub: m.Fields, ok: true}
			}
		}
	}
	return match{}
}

// sameKind says whether a record's field of type a may be the table's field of type b found by an old name:
// both structs, lists or maps, or primitives one of which reads as the other (int and long, float and
// double, decimals of one scale, or equal).
func sameKind(a, b iceberg.Type) bool {
	switch a.(type) {
	case *iceberg.StructType:
		_, ok := b.(*iceberg.StructType)
		return ok
	case *iceberg.ListType:
		_, ok := b.(*iceberg.ListType)
		return ok
	case *iceberg.MapType:
		_, ok := b.(*iceberg.MapType)
		return ok
	}
	pa, ok := a.(iceberg.PrimitiveType)
	if !ok {
		return false
	}
	pb, ok := b.(iceberg.PrimitiveType)
	if !ok {
		return false
	}
	if pa.Equals(pb) {
		return true
	}
	if _, err := iceberg.PromoteType(pa, pb); err == nil {
		return true
	}
	_, err := iceberg.PromoteType(pb, pa)
	return err == nil
}

// sub is the mapping entries of the fields inside the field id.
func (l level) sub(id int) []iceberg.MappedField {
	for _, m := range l.mapping {
		if m.FieldID != nil && *m.FieldID == id {
			return m.Fields
		}
	}
	return nil
}

// inner is the level of the fields inside f (a struct's fields; a list's element; a map's key and value),
// and ok false for a primitive.
func inner(f iceberg.NestedField, mapping []iceberg.MappedField) (level, bool) {
	switch t := f.Type.(type) {
	case *iceberg.StructType:
		return level{fields: t.FieldList, mapping: mapping}, true
	case *iceberg.ListType:
		return level{fields: []iceberg.NestedField{t.ElementField()}, mapping: mapping}, true
	case *iceberg.MapType:
		return level{fields: []iceberg.NestedField{t.KeyField(), t.ValueField()}, mapping: mapping}, true
	}
	return level{}, false
}

// children is the fields inside an incoming field's type, as inner's.
func children(t iceberg.Type) []iceberg.NestedField {
	switch t := t.(type) {
	case *iceberg.StructType:
		return t.FieldList
	case *iceberg.ListType:
		return []iceberg.NestedField{t.ElementField()}
	case *iceberg.MapType:
		return []iceberg.NestedField{t.KeyField(), t.ValueField()}
	}
	return nil
}

// withFieldIDs numbers cols as the table schema s (with its name mapping nm) does; every field, nested
// ones too, must resolve (FieldIDs made the table hold them) unless lenient, which leaves the fields the
// table lacks without ids.
func withFieldIDs(cols *arrow.Schema, s *iceberg.Schema, nm iceberg.NameMapping, lenient bool) (*arrow.Schema, error) {
	in, err := icebergSchema(cols)
	if err != nil {
		return nil, err
	}
	fields, err := numberFields(cols.Fields(), in.Fields(), level{fields: s.Fields(), mapping: nm}, "", lenient)
	if err != nil {
		return nil, err
	}
	md := cols.Metadata()
	return arrow.NewSchema(fields, &md), nil
}

// numberFields numbers a level's fields; in is the same fields as Iceberg types (icebergSchema's, in the
// same order).
func numberFields(fields []arrow.Field, in []iceberg.NestedField, lv level, path string, lenient bool) ([]arrow.Field, error) {
	if len(in) != len(fields) {
		return nil, fmt.Errorf("column %s: %d fields, %d in Iceberg's terms", path, len(fields), len(in))
	}
	ms := lv.resolve(in)
	out := make([]arrow.Field, len(fields))
	for i, f := range fields {
		if !ms[i].ok && lenient {
			out[i] = withoutIDs(f) // not a column of the table: readers by id skip it
			continue
		}
		if !ms[i].ok {
			return nil, fmt.Errorf("column %s%s is not in the table", path, f.Name)
		}
		var err error
		if out[i], err = numberField(f, in[i], ms[i], path+f.Name+".", lenient); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func numberField(f arrow.Field, in iceberg.NestedField, m match, path string, lenient bool) (arrow.Field, error) {
	nf := m.nf
	f.Metadata = arrow.NewMetadata([]string{table.ArrowParquetFieldIDKey}, []string{strconv.Itoa(nf.ID)})
	lv, nested := inner(nf, m.sub)
	mismatch := fmt.Errorf("column %s is %s in the file and %s in the table", path[:len(path)-1], f.Type, nf.Type)
	kids := children(in.Type)
	switch t := f.Type.(type) {
	case *arrow.StructType:
		if _, ok := nf.Type.(*iceberg.StructType); !ok {
			return f, mismatch
		}
		fields, err := numberFields(t.Fields(), kids, lv, path, lenient)
		if err != nil {
			return f, err
		}
		f.Type = arrow.StructOf(fields...)
	case *arrow.ListType:
		if _, ok := nf.Type.(*iceberg.ListType); !ok {
			return f, mismatch
		}
		elem := t.ElemField()
		elem.Name = "element"
		fields, err := numberFields([]arrow.Field{elem}, kids, lv, path, lenient)
		if err != nil {
			return f, err
		}
		fields[0].Name = t.ElemField().Name
		f.Type = arrow.ListOfField(fields[0])
	case *arrow.MapType:
		if _, ok := nf.Type.(*iceberg.MapType); !ok {
			return f, mismatch
		}
		fields, err := numberFields([]arrow.Field{t.KeyField(), t.ItemField()}, kids, lv, path, lenient)
		if err != nil {
			return f, err
		}
		mt := arrow.MapOfFields(fields[0], fields[1])
		mt.KeysSorted = t.KeysSorted
		f.Type = mt
	default:
		if nested {
			return f, mismatch
		}
		if lenient && !readsAs(in.Type, nf.Type) {
			return withoutIDs(f), nil // a column the table has with another type: readers by id skip it
		}
	}
	return f, nil
}

// readsAs says whether a file's column of type a reads as the table's type b (equal, or promoted).
func readsAs(a, b iceberg.Type) bool {
	if a.Equals(b) {
		return true
	}
	_, err := iceberg.PromoteType(a, b)
	return err == nil
}

// renamed returns s with each field named as tbl now names it: a field another engine renamed is found
// through the name mapping by its old name (see resolve), and is not added again under it.
func renamed(s *iceberg.Schema, tbl *table.Table) *iceberg.Schema {
	changed := false
	fields := renameFields(s.Fields(), level{fields: tbl.Schema().Fields(), mapping: tbl.NameMapping()}, &changed)
	if !changed {
		return s
	}
	return iceberg.NewSchemaWithIdentifiers(s.ID, s.IdentifierFieldIDs, fields...)
}

func renameFields(fields []iceberg.NestedField, lv level, changed *bool) []iceberg.NestedField {
	ms := lv.resolve(fields)
	out := make([]iceberg.NestedField, len(fields))
	for i, f := range fields {
		out[i] = f
		m := ms[i]
		if !m.ok {
			continue // a new field, its children too
		}
		if m.nf.Name != f.Name {
			out[i].Name = m.nf.Name
			*changed = true
		}
		tl, ok := inner(m.nf, m.sub)
		if !ok {
			continue
		}
		switch t := f.Type.(type) {
		case *iceberg.StructType:
			if _, ok := m.nf.Type.(*iceberg.StructType); ok {
				out[i].Type = &iceberg.StructType{FieldList: renameFields(t.FieldList, tl, changed)}
			}
		case *iceberg.ListType:
			if _, ok := m.nf.Type.(*iceberg.ListType); ok {
				e := renameFields([]iceberg.NestedField{t.ElementField()}, tl, changed)
				out[i].Type = &iceberg.ListType{ElementID: t.ElementID, Element: e[0].Type, ElementRequired: t.ElementRequired}
			}
		case *iceberg.MapType:
			if _, ok := m.nf.Type.(*iceberg.MapType); ok {
				kv := renameFields([]iceberg.NestedField{t.KeyField(), t.ValueField()}, tl, changed)
				out[i].Type = &iceberg.MapType{KeyID: t.KeyID, KeyType: kv[0].Type, ValueID: t.ValueID, ValueType: kv[1].Type, ValueRequired: t.ValueRequired}
			}
		}
	}
	return out
}

// mappingFits says whether nm maps every field of s (nested ones too) by its present name to its id, and
// gives no name of a field to another: a mapping minipipe may extend (keeping the old names of renamed
// fields) rather than replace.
func mappingFits(nm iceberg.NameMapping, s *iceberg.Schema) bool {
	return nm != nil && levelFits(level{fields: s.Fields(), mapping: nm})
}

func levelFits(lv level) bool {
	for _, f := range lv.fields {
		var entry *iceberg.MappedField
		for j := range lv.mapping {
			m := &lv.mapping[j]
			if !slices.Contains(m.Names, f.Name) {
				continue
			}
			if m.FieldID == nil || *m.FieldID != f.ID {
				return false
			}
			entry = m
		}
		if entry == nil {
			return false
		}
		if tl, ok := inner(f, entry.Fields); ok && !levelFits(tl) {
			return false
		}
	}
	return true
}

// withoutIDs is f without field ids, nested ones too.
func withoutIDs(f arrow.Field) arrow.Field {
	f.Metadata = arrow.Metadata{}
	switch t := f.Type.(type) {
	case *arrow.StructType:
		fs := make([]arrow.Field, t.NumFields())
		for i, c := range t.Fields() {
			fs[i] = withoutIDs(c)
		}
		f.Type = arrow.StructOf(fs...)
	case *arrow.ListType:
		f.Type = arrow.ListOfField(withoutIDs(t.ElemField()))
	case *arrow.MapType:
		mt := arrow.MapOfFields(withoutIDs(t.KeyField()), withoutIDs(t.ItemField()))
		mt.KeysSorted = t.KeysSorted
		f.Type = mt
	}
	return f
}

// renumber makes a copy of the committed file name numbered as tbl numbers its columns, under
// _minipipe/iceberg-renumbered/<table uuid>/ (which minipipe's own readers skip), unless the copy is there already, and
// returns its URI and size: the file was numbered by a table made again since (dropped by hand), whose ids
// may name other columns. The rows are the same.
func (c *Catalog) renumber(ctx context.Context, tbl *table.Table, name string) (string, int64, error) {
	// Under minipipe's own directory (the table's location may be written otherwise, s3:// for s3a://, or lie
	// elsewhere), by the table's uuid: a table made again once more numbers its own copies.
	dst := fs.Join("_minipipe", "iceberg-renumbered", tbl.Metadata().TableUUID().String(), strings.ReplaceAll(name, "/", "~"))
	if st, err := c.cfg.FS.Stat(dst); err == nil {
		return c.root + "/" + dst, st.Size, nil // an earlier attempt's
	}
	in, err := c.cfg.FS.ReadFile(name)
	if err != nil {
		return "", 0, err
	}
	out, err := renumberFile(ctx, in, tbl)
	if err != nil {
		return "", 0, err
	}
	if err := c.cfg.FS.WriteFile(dst, out); err != nil {
		return "", 0, err
	}
	c.cfg.Log.Warn("a file numbered by a table dropped since is added as a copy numbered by the table made again", "table", tbl.Identifier(), "file", name, "copy", dst)
	return c.root + "/" + dst, int64(len(out)), nil
}

// renumberFile rewrites a Parquet file with its columns numbered as tbl numbers them (those it lacks
// without ids), the rows and the footer's key-value metadata unchanged.
func renumberFile(ctx context.Context, in []byte, tbl *table.Table) ([]byte, error) {
	r, err := file.NewParquetReader(bytes.NewReader(in))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	src, err := fr.Schema()
	if err != nil {
		return nil, err
	}
	numbered, err := withFieldIDs(arrow.NewSchema(src.Fields(), nil), tbl.Schema(), tbl.NameMapping(), true)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithStats(true), parquet.WithCreatedBy("minipipe"))
	fw, err := pqarrow.NewFileWriter(numbered, &buf, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return nil, err
	}
	if md := r.MetaData().KeyValueMetadata(); md != nil {
		for i, k := range md.Keys() {
			if k != "ARROW:schema" {
				if err := fw.AppendKeyValueMetadata(k, md.Values()[i]); err != nil {
					return nil, err
				}
			}
		}
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return nil, err
	}
	defer rr.Release()
	var rows int64
	for rr.Next() {
		rec := rr.RecordBatch()
		cols := make([]arrow.Array, rec.NumCols())
		for i := range cols {
			d, err := retype(rec.Column(i).Data(), numbered.Field(i).Type)
			if err != nil {
				return nil, fmt.Errorf("column %s: %w", numbered.Field(i).Name, err)
			}
			cols[i] = array.MakeFromData(d)
			d.Release()
		}
		out := array.NewRecordBatch(numbered, cols, rec.NumRows())
		for _, c := range cols {
			c.Release()
		}
		err := fw.Write(out)
		rows += out.NumRows()
		out.Release()
		if err != nil {
			return nil, err
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if rows != r.NumRows() {
		return nil, fmt.Errorf("read %d rows of the %d its footer says", rows, r.NumRows())
	}
	if err := fw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// retype is d as an array of type t: the same buffers and layout, with its fields' metadata (ids) those of t.
func retype(d arrow.ArrayData, t arrow.DataType) (arrow.ArrayData, error) {
	var kidTypes []arrow.DataType
	switch tt := t.(type) {
	case *arrow.StructType:
		for _, f := range tt.Fields() {
			kidTypes = append(kidTypes, f.Type)
		}
	case *arrow.MapType:
		kidTypes = []arrow.DataType{tt.Elem()}
	case *arrow.ListType:
		kidTypes = []arrow.DataType{tt.Elem()}
	}
	kids := d.Children()
	if len(kids) != len(kidTypes) {
		return nil, fmt.Errorf("%d children for type %s", len(kids), t)
	}
	out := make([]arrow.ArrayData, len(kids))
	for i, k := range kids {
		var err error
		if out[i], err = retype(k, kidTypes[i]); err != nil {
			return nil, err
		}
	}
	nd := array.NewData(t, d.Len(), d.Buffers(), out, d.NullN(), d.Offset())
	for _, k := range out {
		k.Release()
	}
	return nd, nil
}

// repairMapping is s's own name mapping with the names old (a mapping that does not fit s) gives each field
// id besides, where no other field at its level has the name: the old names of renamed columns, by which
// files without ids and records still name them, survive a mapping another writer left incomplete.
func repairMapping(old iceberg.NameMapping, s *iceberg.Schema) iceberg.NameMapping {
	return repairLevel(cloneMapping(s.NameMapping()), old) // the schema's is cached: never changed in place
}

func cloneMapping(m []iceberg.MappedField) []iceberg.MappedField {
	if m == nil {
		return nil
	}
	out := make([]iceberg.MappedField, len(m))
	for i, f := range m {
		out[i] = iceberg.MappedField{FieldID: f.FieldID, Names: slices.Clone(f.Names), Fields: cloneMapping(f.Fields)}
	}
	return out
}

func repairLevel(fresh, old []iceberg.MappedField) []iceberg.MappedField {
	taken := map[string]bool{}
	for _, m := range fresh {
		for _, n := range m.Names {
			taken[n] = true
		}
	}
	for i := range fresh {
		if fresh[i].FieldID == nil {
			continue
		}
		for _, o := range old {
			if o.FieldID == nil || *o.FieldID != *fresh[i].FieldID {
				continue
			}
			for _, n := range o.Names {
				if !taken[n] {
					fresh[i].Names = append(fresh[i].Names, n)
					taken[n] = true
				}
			}
			fresh[i].Fields = repairLevel(fresh[i].Fields, o.Fields)
		}
	}
	return fresh
}
