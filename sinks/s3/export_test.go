package s3

import (
	"context"

	"github.com/minipipe/minipipe/sinks/fs"
)

// Uploads lists the keys of the multipart uploads in progress under name (tests only).
func (f *FS) Uploads(name string) ([]string, error) {
	key, err := f.key(name)
	if err != nil {
		return nil, err
	}
	var keys []string
	err = f.abortUploads(context.Background(), key, func(k, _ string) bool { keys = append(keys, k); return false })
	return keys, err
}

// RenameFailed is renameFailed for a rename of oldname to newname whose upload is w's.
func (f *FS) RenameFailed(oldname, newname string, w fs.File, err error) error {
	u := w.(*upload)
	return f.renameFailed(oldname, newname, u.key, u.id, err)
}
