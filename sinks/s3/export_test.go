package s3

import "context"

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
