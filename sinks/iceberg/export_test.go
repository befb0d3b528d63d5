package iceberg

import (
	"context"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
)

// SetExpiry changes the automatic expiry's thresholds for a test; the returned func restores them.
func SetExpiry(above, retain int, age time.Duration) func() {
	a, r, g := expireAbove, retainSnapshots, expireAge
	expireAbove, retainSnapshots, expireAge = above, retain, age
	return func() { expireAbove, retainSnapshots, expireAge = a, r, g }
}

// SetBeforeCommit runs f between building a batch's snapshot and committing it; the returned func removes it.
func SetBeforeCommit(f func()) func() {
	beforeCommit = f
	return func() { beforeCommit = nil }
}

// CreateBare creates a table as another writer might: no name mapping, no partitions.
func (c *Catalog) CreateBare(ctx context.Context, name, location string, cols *arrow.Schema) error {
	sch, err := icebergSchema(cols)
	if err != nil {
		return err
	}
	_, err = c.cat.CreateTable(ctx, c.Identifier(name), sch, catalog.WithLocation(location))
	return err
}

// MappingFits exposes mappingFits.
func MappingFits(nm iceberg.NameMapping, s *iceberg.Schema) bool { return mappingFits(nm, s) }

// DropTable drops a table as a person might, by hand.
func (c *Catalog) DropTable(ctx context.Context, name string) error {
	cat, err := c.catalog(ctx)
	if err != nil {
		return err
	}
	return cat.DropTable(ctx, c.Identifier(name))
}
