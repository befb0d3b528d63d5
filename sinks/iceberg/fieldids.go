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
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

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
	return withFieldIDs(cols, tbl.Schema(), tbl.NameMapping())
}

// level is one struct of a table's schema, with the name mapping's entries for its fields.
type level struct {
	fields  []iceberg.NestedField
	mapping []iceberg.MappedField
}

// find resolves the name of a field of a record at a level: the table's field of that name, else the
// field whose old names (in the name mapping) include it — unless the record has a field of that field's
// present name too (siblings), which then is that field. It returns the field and its mapping entries.
func (l level) find(name string, siblings map[string]bool) (iceberg.NestedField, []iceberg.MappedField, bool) {
	for _, f := range l.fields {
		if f.Name == name {
			return f, l.sub(f.ID), true
		}
	}
	for _, m := range l.mapping {
		if m.FieldID == nil || !slices.Contains(m.Names, name) {
			continue
		}
		for _, f := range l.fields {
			if f.ID == *m.FieldID && !siblings[f.Name] {
				return f, m.Fields, true
			}
		}
	}
	return iceberg.NestedField{}, nil, false
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

// withFieldIDs numbers cols as the table schema s (with its name mapping nm) does; every field, nested
// ones too, must resolve (FieldIDs made the table hold them).
func withFieldIDs(cols *arrow.Schema, s *iceberg.Schema, nm iceberg.NameMapping) (*arrow.Schema, error) {
	fields, err := numberFields(cols.Fields(), level{fields: s.Fields(), mapping: nm}, "")
	if err != nil {
		return nil, err
	}
	md := cols.Metadata()
	return arrow.NewSchema(fields, &md), nil
}

func numberFields(fields []arrow.Field, lv level, path string) ([]arrow.Field, error) {
	siblings := make(map[string]bool, len(fields))
	for _, f := range fields {
		siblings[f.Name] = true
	}
	out := make([]arrow.Field, len(fields))
	seen := map[int]string{}
	for i, f := range fields {
		nf, sub, ok := lv.find(f.Name, siblings)
		if !ok {
			return nil, fmt.Errorf("column %s%s is not in the table", path, f.Name)
		}
		if other, dup := seen[nf.ID]; dup {
			return nil, fmt.Errorf("columns %s%s and %s%s are both the table's field %d", path, other, path, f.Name, nf.ID)
		}
		seen[nf.ID] = f.Name
		var err error
		if out[i], err = numberField(f, nf, sub, path+f.Name+"."); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func numberField(f arrow.Field, nf iceberg.NestedField, sub []iceberg.MappedField, path string) (arrow.Field, error) {
	f.Metadata = arrow.NewMetadata([]string{table.ArrowParquetFieldIDKey}, []string{strconv.Itoa(nf.ID)})
	lv, nested := inner(nf, sub)
	mismatch := fmt.Errorf("column %s is %s in the file and %s in the table", path[:len(path)-1], f.Type, nf.Type)
	switch t := f.Type.(type) {
	case *arrow.StructType:
		if _, ok := nf.Type.(*iceberg.StructType); !ok {
			return f, mismatch
		}
		fields, err := numberFields(t.Fields(), lv, path)
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
		fields, err := numberFields([]arrow.Field{elem}, lv, path)
		if err != nil {
			return f, err
		}
		fields[0].Name = t.ElemField().Name
		f.Type = arrow.ListOfField(fields[0])
	case *arrow.MapType:
		if _, ok := nf.Type.(*iceberg.MapType); !ok {
			return f, mismatch
		}
		fields, err := numberFields([]arrow.Field{t.KeyField(), t.ItemField()}, lv, path)
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
	}
	return f, nil
}

// renamed returns s with each field named as tbl now names it: a field another engine renamed is found
// through the name mapping by its old name, and is not added again under it.
func renamed(s *iceberg.Schema, tbl *table.Table) *iceberg.Schema {
	changed := false
	fields := renameFields(s.Fields(), level{fields: tbl.Schema().Fields(), mapping: tbl.NameMapping()}, &changed)
	if !changed {
		return s
	}
	return iceberg.NewSchemaWithIdentifiers(s.ID, s.IdentifierFieldIDs, fields...)
}

func renameFields(fields []iceberg.NestedField, lv level, changed *bool) []iceberg.NestedField {
	siblings := make(map[string]bool, len(fields))
	for _, f := range fields {
		siblings[f.Name] = true
	}
	out := make([]iceberg.NestedField, len(fields))
	for i, f := range fields {
		out[i] = f
		nf, sub, ok := lv.find(f.Name, siblings)
		if !ok {
			continue // a new field, its children too
		}
		if nf.Name != f.Name {
			out[i].Name = nf.Name
			*changed = true
		}
		tl, ok := inner(nf, sub)
		if !ok {
			continue
		}
		switch t := f.Type.(type) {
		case *iceberg.StructType:
			if _, ok := nf.Type.(*iceberg.StructType); ok {
				out[i].Type = &iceberg.StructType{FieldList: renameFields(t.FieldList, tl, changed)}
			}
		case *iceberg.ListType:
			if _, ok := nf.Type.(*iceberg.ListType); ok {
				e := renameFields([]iceberg.NestedField{t.ElementField()}, tl, changed)
				out[i].Type = &iceberg.ListType{ElementID: t.ElementID, Element: e[0].Type, ElementRequired: t.ElementRequired}
			}
		case *iceberg.MapType:
			if _, ok := nf.Type.(*iceberg.MapType); ok {
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
