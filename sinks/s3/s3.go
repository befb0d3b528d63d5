// Package s3 is the S3 warehouse backend (s3://BUCKET/PREFIX) of the fs contract, on aws-sdk-go-v2, for AWS S3
// and S3-compatible servers (path-style addressing with an endpoint).
//
// S3 has no directories and no rename; the contract is kept this way:
//   - directories are marker objects ("dir/"), made by MkdirAll; Create refuses a missing one;
//   - a file open for writing is a multipart upload, visible all at once when Close completes it, and aborted by
//     a RemoveAll of its directory, so that a writer whose directory was removed can publish nothing (the fence);
//   - CreateExclusive is a PutObject with If-None-Match: *: of two writers of one name S3 itself lets one win;
//   - Rename copies through a multipart upload completed with If-None-Match: * (so it never replaces), then
//     deletes the source.
package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/minipipe/minipipe/sinks/fs"
)

// partSize is the size of the parts of an upload but the last (S3 takes 5 MiB at least).
const partSize = 8 << 20

func init() {
	fs.Register("s3", func(u *url.URL) (fs.FS, error) { return Open(context.Background(), u.String(), Defaults()) })
	fs.Register("s3a", func(u *url.URL) (fs.FS, error) { return Open(context.Background(), u.String(), Defaults()) })
}

var (
	defaultsMu sync.Mutex
	defaults   *Config
)

// SetDefaults sets what s3:// warehouses opened through fs.Open use (minipipe's --s3-endpoint, --s3-region).
func SetDefaults(c Config) {
	defaultsMu.Lock()
	defer defaultsMu.Unlock()
	defaults = &c
}

// Defaults is what SetDefaults set, else the AWS SDK's environment: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL
// name an S3-compatible server (path-style), AWS_REGION its region.
func Defaults() Config {
	defaultsMu.Lock()
	defer defaultsMu.Unlock()
	if defaults != nil {
		return *defaults
	}
	c := Config{Endpoint: os.Getenv("AWS_ENDPOINT_URL_S3")}
	if c.Endpoint == "" {
		c.Endpoint = os.Getenv("AWS_ENDPOINT_URL")
	}
	return c
}

// Config is how to reach the bucket; credentials come from the standard AWS chain (environment, shared files,
// web identity, instance roles).
type Config struct {
	Endpoint  string // an S3-compatible server's URL; empty for AWS
	Region    string // empty: from the environment (AWS_REGION), else us-east-1
	PathStyle bool   // path-style addressing (implied by Endpoint)
	Timeout   time.Duration
}

// FS is a warehouse in a bucket, under a prefix.
type FS struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or "a/b" (no slashes around)
	timeout  time.Duration
	endpoint string

	dirsMu sync.Mutex
	dirs   map[string]bool // directories of published files this FS has made (forgotten past 10,000)
}

// Open opens s3://BUCKET/PREFIX with cfg.
func Open(ctx context.Context, raw string, cfg Config) (*FS, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "s3" && u.Scheme != "s3a") || u.Host == "" {
		return nil, fmt.Errorf("warehouse %q: want s3://BUCKET/PREFIX", raw)
	}
	opts := []func(*awsconfig.LoadOptions) error{}
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("warehouse %s: AWS configuration: %w", raw, err)
	}
	if ac.Region == "" {
		ac.Region = "us-east-1"
	}
	client := s3.NewFromConfig(ac, func(o *s3.Options) {
		// A multipart object has no whole-object checksum to validate; the SDK would log that on every read.
		o.DisableLogOutputChecksumValidationSkipped = true
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.UsePathStyle = true
			// Checksums only where the API requires them: S3-compatible servers differ in the trailers they take.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		}
		if cfg.PathStyle {
			o.UsePathStyle = true
		}
	})
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if prefix, err = fs.Clean(prefix); err != nil {
			return nil, fmt.Errorf("warehouse %s: %w", raw, err)
		}
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	f := &FS{client: client, bucket: u.Host, prefix: prefix, timeout: timeout, endpoint: cfg.Endpoint}
	if err := f.probe(); err != nil {
		return nil, fmt.Errorf("warehouse %s: %w", raw, err)
	}
	return f, nil
}

// probe checks that the server refuses a second conditional put of a key (If-None-Match: *): the manifest's
// fence. A server that ignores the condition would let a zombie overwrite records.
func (f *FS) probe() error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "_minipipe/probe/" + hex.EncodeToString(b)
	if err := f.CreateExclusive(name, []byte("1")); err != nil {
		return fmt.Errorf("writing a probe: %w", err)
	}
	defer func() { _ = f.Remove(name) }()
	if err := f.CreateExclusive(name, []byte("2")); !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("this S3 server does not refuse a conditional put (If-None-Match: *) of an existing key (%v): minipipe's commits need it (AWS S3 has it since 2024-08)", err)
	}
	return nil
}

// CacheKey names the warehouse for local caches: the server, the bucket and the prefix.
func (f *FS) CacheKey() string { return f.endpoint + " " + f.bucket + "/" + f.prefix }

func (f *FS) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), f.timeout)
}

// key is the object key of a warehouse path.
func (f *FS) key(name string) (string, error) {
	c, err := fs.Clean(name)
	if err != nil {
		return "", err
	}
	if f.prefix == "" {
		return c, nil
	}
	return f.prefix + "/" + c, nil
}

// wrap turns S3 errors into the contract's: a missing key is ErrNotExist, a failed precondition ErrExist,
// throttling, server errors and timeouts are retriable.
func wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var nb *types.NoSuchBucket
	if errors.As(err, &nb) {
		return fmt.Errorf("%s %s: the bucket does not exist (or is not this account's): %w", op, name, err)
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var nsu *types.NoSuchUpload
	if errors.As(err, &nsk) || errors.As(err, &nf) || errors.As(err, &nsu) {
		return fmt.Errorf("%s %s: %w", op, name, fs.ErrNotExist)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Errorf("%s %s: the bucket does not exist (or is not this account's): %w", op, name, err)
		case "PreconditionFailed":
			return fmt.Errorf("%s %s: %w", op, name, fs.ErrExist)
		case "NoSuchKey", "NotFound", "NoSuchUpload":
			return fmt.Errorf("%s %s: %w", op, name, fs.ErrNotExist)
		case "ConditionalRequestConflict", "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable":
			return &fs.Retriable{Err: fmt.Errorf("%s %s: %w", op, name, err)}
		}
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		switch code := re.HTTPStatusCode(); {
		case code == http.StatusNotFound:
			return fmt.Errorf("%s %s: %w", op, name, fs.ErrNotExist)
		case code == http.StatusPreconditionFailed:
			return fmt.Errorf("%s %s: %w", op, name, fs.ErrExist)
		case code >= 500 || code == http.StatusConflict || code == http.StatusTooManyRequests:
			return &fs.Retriable{Err: fmt.Errorf("%s %s: %w", op, name, err)}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &fs.Retriable{Err: fmt.Errorf("%s %s: %w", op, name, err)}
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

// dirExists reports whether a directory is there: its marker, or any object below it.
func (f *FS) dirExists(ctx context.Context, dirKey string) (bool, error) {
	if dirKey == "" || dirKey == f.prefix {
		return true, nil // the warehouse root
	}
	out, err := f.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &f.bucket, Prefix: aws.String(dirKey + "/"), MaxKeys: aws.Int32(1)})
	if err != nil {
		return false, err
	}
	return len(out.Contents) > 0, nil
}

func (f *FS) parentKey(key string) string {
	d := path.Dir(key)
	if d == "." {
		return ""
	}
	return d
}

// Create opens a multipart upload of name; Close completes it (replacing what was there). The upload is started
// first and the directory's marker checked after: a RemoveAll deletes the marker before it lists the uploads to
// abort, so an upload that saw the marker is always among those it aborts (this relies on S3 listing an upload
// once CreateMultipartUpload has returned, as it lists objects once written).
func (f *FS) Create(name string) (fs.File, error) {
	key, err := f.key(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := f.ctx()
	defer cancel()
	out, err := f.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &f.bucket, Key: &key})
	if err != nil {
		return nil, wrap("create", name, err)
	}
	u := &upload{fs: f, name: name, key: key, id: *out.UploadId}
	ok, err := f.markerExists(ctx, f.parentKey(key))
	if err != nil || !ok {
		u.abort()
		if err != nil {
			return nil, wrap("create", name, err)
		}
		return nil, fmt.Errorf("create %s: its directory: %w", name, fs.ErrNotExist)
	}
	return u, nil
}

// markerExists reports whether a directory's marker is there (the warehouse root always is).
func (f *FS) markerExists(ctx context.Context, dirKey string) (bool, error) {
	if dirKey == "" || dirKey == f.prefix {
		return true, nil
	}
	_, err := f.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &f.bucket, Key: aws.String(dirKey + "/")})
	if err == nil {
		return true, nil
	}
	if errors.Is(wrap("", "", err), fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

var errUploadClosed = errors.New("closed")

// upload is a file being written: parts of partSize, the rest buffered until Close.
type upload struct {
	fs      *FS
	name    string
	key     string
	id      string
	buf     bytes.Buffer
	parts   []types.CompletedPart
	err     error
	aborted bool
}

// Buffered is what the upload holds in memory: the part being filled (the commit stage counts it in its
// write budget).
func (u *upload) Buffered() int64 { return int64(u.buf.Cap()) }

func (u *upload) Write(p []byte) (int, error) {
	if u.err != nil {
		return 0, u.err
	}
	n, _ := u.buf.Write(p)
	for u.buf.Len() >= partSize {
		if err := u.flush(partSize); err != nil {
			u.err = err
			return n, err
		}
	}
	return n, nil
}

func (u *upload) flush(n int) error {
	ctx, cancel := u.fs.ctx()
	defer cancel()
	body := u.buf.Next(n)
	num := int32(len(u.parts) + 1)
	out, err := u.fs.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: &u.fs.bucket, Key: &u.key, UploadId: &u.id,
		PartNumber: aws.Int32(num), Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})
	if err != nil {
		return wrap("write", u.name, err)
	}
	u.parts = append(u.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
	return nil
}

// Close uploads the last part and completes the upload: the file appears whole, or not at all.
func (u *upload) Close() error {
	if u.err != nil {
		u.abort()
		return u.err
	}
	if u.buf.Len() > 0 || len(u.parts) == 0 {
		if err := u.flush(u.buf.Len()); err != nil {
			u.abort()
			return err
		}
	}
	ctx, cancel := u.fs.ctx()
	defer cancel()
	_, err := u.fs.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &u.fs.bucket, Key: &u.key, UploadId: &u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts}})
	if err != nil {
		werr := wrap("close", u.name, err)
		if !errors.Is(werr, fs.ErrNotExist) && isServerError(err) {
			// Some servers answer the completion of an aborted upload with a 500: ask for the upload itself.
			lctx, lcancel := u.fs.ctx()
			_, lerr := u.fs.client.ListParts(lctx, &s3.ListPartsInput{Bucket: &u.fs.bucket, Key: &u.key, UploadId: &u.id})
			lcancel()
			if lerr != nil && errors.Is(wrap("", "", lerr), fs.ErrNotExist) {
				werr = fmt.Errorf("close %s: %w", u.name, fs.ErrNotExist)
			}
		}
		u.abort()
		if errors.Is(werr, fs.ErrNotExist) {
			// Aborted meanwhile (its directory removed by a new owner): nothing was published.
			return fmt.Errorf("close %s: the upload was aborted (its directory was removed): %w", u.name, fs.ErrNotExist)
		}
		return werr
	}
	u.err = errUploadClosed
	u.buf = bytes.Buffer{}
	return nil
}

// Abort gives the upload up: nothing is published under its name.
func (u *upload) Abort() error {
	if u.err != errUploadClosed {
		u.err = errors.New("aborted")
		u.abort()
	}
	u.buf = bytes.Buffer{}
	return nil
}

// isServerError: some S3-compatible servers answer a completion of an aborted upload with a 500.
func isServerError(err error) bool {
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() >= 500
}

func (u *upload) abort() {
	if u.aborted {
		return
	}
	u.aborted = true
	ctx, cancel := u.fs.ctx()
	defer cancel()
	_, _ = u.fs.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.fs.bucket, Key: &u.key, UploadId: &u.id})
}

// CreateExclusive puts name with If-None-Match: *; S3 refuses it (412) when name exists.
func (f *FS) CreateExclusive(name string, data []byte) error {
	key, err := f.key(name)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		ctx, cancel := f.ctx()
		_, err = f.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &f.bucket, Key: &key, Body: bytes.NewReader(data),
			ContentLength: aws.Int64(int64(len(data))), IfNoneMatch: aws.String("*")})
		cancel()
		var ae smithy.APIError
		// 409: a concurrent conditional write of the same key; AWS asks for a retry.
		if err != nil && errors.As(err, &ae) && ae.ErrorCode() == "ConditionalRequestConflict" && attempt < 5 {
			time.Sleep(time.Duration(50<<attempt) * time.Millisecond)
			continue
		}
		return wrap("create exclusive", name, err)
	}
}

// WriteFile replaces name (a PutObject is atomic).
func (f *FS) WriteFile(name string, data []byte) error {
	key, err := f.key(name)
	if err != nil {
		return err
	}
	ctx, cancel := f.ctx()
	defer cancel()
	_, err = f.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &f.bucket, Key: &key, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))})
	return wrap("write", name, err)
}

// ReadFile returns name's contents.
func (f *FS) ReadFile(name string) ([]byte, error) {
	r, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, wrap("read", name, err)
	}
	return b, nil
}

// Open reads name.
func (f *FS) Open(name string) (io.ReadCloser, error) {
	key, err := f.key(name)
	if err != nil {
		return nil, err
	}
	// The request and every read after it must make progress within the timeout: a stalled server ends the
	// read with an error instead of holding the reader (a query's mirror, a recovery) forever.
	ctx, cancel := context.WithCancel(context.Background())
	r := &idleReader{name: name, cancel: cancel, idle: f.timeout}
	r.timer = time.AfterFunc(f.timeout, r.expire)
	out, err := f.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &f.bucket, Key: &key})
	r.timer.Stop()
	if err != nil {
		cancel()
		if r.expired.Load() {
			return nil, r.timeout()
		}
		return nil, wrap("open", name, err)
	}
	r.body = out.Body
	if r.expired.Load() { // fired as the answer came: its body is cancelled
		r.Close()
		return nil, r.timeout()
	}
	return r, nil
}

// idleReader is an object's body whose request is cancelled when a read does not complete within idle.
type idleReader struct {
	name    string
	body    io.ReadCloser
	cancel  context.CancelFunc
	timer   *time.Timer
	idle    time.Duration
	expired atomic.Bool
}

func (r *idleReader) expire() { r.expired.Store(true); r.cancel() }

func (r *idleReader) timeout() error {
	return &fs.Retriable{Err: fmt.Errorf("reading %s: the server sent nothing for %s", r.name, r.idle)}
}

func (r *idleReader) Read(p []byte) (int, error) {
	if r.expired.Load() {
		return 0, r.timeout()
	}
	r.timer.Reset(r.idle)
	n, err := r.body.Read(p)
	r.timer.Stop() // only a read in progress is bounded, not the caller's time between reads
	if r.expired.Load() {
		return n, r.timeout() // the request is cancelled: no later read can succeed
	}
	if err != nil && !errors.Is(err, io.EOF) {
		err = &fs.Retriable{Err: fmt.Errorf("reading %s: %w", r.name, err)}
	}
	return n, err
}

func (r *idleReader) Close() error {
	r.timer.Stop()
	err := r.body.Close()
	r.cancel()
	return err
}

// Rename copies oldname to newname through an upload completed with If-None-Match: * (never replacing), then
// deletes oldname — only once newname is whole, so that whoever finds oldname gone finds newname there. A
// conflict with a concurrent conditional write (409) is tried again, with a new upload, as AWS asks.
func (f *FS) Rename(oldname, newname string) error {
	for attempt := 0; ; attempt++ {
		err := f.rename(oldname, newname)
		var ae smithy.APIError
		if err != nil && errors.As(err, &ae) && ae.ErrorCode() == "ConditionalRequestConflict" && attempt < 5 {
			time.Sleep(time.Duration(50<<attempt) * time.Millisecond)
			continue
		}
		return err
	}
}

func (f *FS) rename(oldname, newname string) error {
	from, err := f.key(oldname)
	if err != nil {
		return err
	}
	to, err := f.key(newname)
	if err != nil {
		return err
	}
	ctx, cancel := f.ctx()
	defer cancel()
	head, err := f.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &f.bucket, Key: &from})
	if err != nil {
		return wrap("rename", oldname, err)
	}
	size := aws.ToInt64(head.ContentLength)
	if d := path.Dir(newname); d != "." {
		// The contract: missing directories of newname are made. A table's directories are never a fence (only
		// staging directories are), so those this FS made once are not put again for every file published.
		f.dirsMu.Lock()
		made := f.dirs[d]
		f.dirsMu.Unlock()
		if !made {
			if err := f.MkdirAll(d); err != nil {
				return err
			}
			f.dirsMu.Lock()
			if f.dirs == nil || len(f.dirs) >= 10000 {
				f.dirs = map[string]bool{}
			}
			f.dirs[d] = true
			f.dirsMu.Unlock()
		}
	}
	mu, err := f.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &f.bucket, Key: &to})
	if err != nil {
		return wrap("rename", newname, err)
	}
	abort := func() {
		actx, acancel := f.ctx() // a context of its own: the failure may have been the rename's timeout
		defer acancel()
		_, _ = f.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &f.bucket, Key: &to, UploadId: mu.UploadId})
	}
	// Parts of at most 1 GiB (a part copy takes at most 5 GiB).
	const copyPart = 1 << 30
	var parts []types.CompletedPart
	for off, num := int64(0), int32(1); off < size || num == 1; off, num = off+copyPart, num+1 {
		in := &s3.UploadPartCopyInput{Bucket: &f.bucket, Key: &to, UploadId: mu.UploadId, PartNumber: aws.Int32(num),
			CopySource: aws.String(f.bucket + "/" + url.PathEscape(from)), CopySourceIfMatch: head.ETag}
		if size > copyPart {
			in.CopySourceRange = aws.String(fmt.Sprintf("bytes=%d-%d", off, min(off+copyPart, size)-1))
		}
		pctx, pcancel := f.ctx() // each part copy (up to 1 GiB) has the whole timeout
		out, err := f.client.UploadPartCopy(pctx, in)
		pcancel()
		if err != nil {
			rerr := f.renameFailed(oldname, newname, to, aws.ToString(mu.UploadId), err) // before the abort: it asks the upload
			abort()
			return rerr
		}
		parts = append(parts, types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(num)})
		if size == 0 {
			break
		}
	}
	cctx, ccancel := f.ctx()
	defer ccancel()
	if _, err := f.client.CompleteMultipartUpload(cctx, &s3.CompleteMultipartUploadInput{Bucket: &f.bucket, Key: &to, UploadId: mu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}, IfNoneMatch: aws.String("*")}); err != nil {
		rerr := f.renameFailed(oldname, newname, to, aws.ToString(mu.UploadId), err)
		abort()
		return rerr
	}
	if _, err := f.client.DeleteObject(cctx, &s3.DeleteObjectInput{Bucket: &f.bucket, Key: &from}); err != nil {
		return wrap("rename: removing", oldname, err)
	}
	// newname is whole: any other upload to it is a rename of the same file that crashed before completing, or
	// one still running (a zombie's, or a recovery's), which would fail its conditional completion anyway and
	// is told so (renameFailed). Aborted here, so a crash costs no storage for good; best effort, with a time of
	// its own: what this misses, the bucket's AbortIncompleteMultipartUpload rule (README) removes.
	actx, acancel := context.WithTimeout(context.Background(), min(f.timeout, 10*time.Second))
	defer acancel()
	_ = f.abortUploads(actx, to, func(key, id string) bool { return key == to && id != aws.ToString(mu.UploadId) })
	return nil
}

// renameFailed explains a rename's failed part copy or completion. The rename's own upload gone means another
// rename to newname won and aborted it (above): newname exists, as the conditional completion would have said
// with a 412, so the error is ErrExist, never ErrNotExist — which means the source is gone.
func (f *FS) renameFailed(oldname, newname, to, uploadID string, err error) error {
	werr := wrap("rename to", newname, err)
	gone := false
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload" {
		gone = true
	} else if isServerError(err) || errors.Is(werr, fs.ErrNotExist) {
		// Some servers answer for an aborted upload with a 500; a missing source is NoSuchKey: ask the upload.
		ctx, cancel := f.ctx()
		_, lerr := f.client.ListParts(ctx, &s3.ListPartsInput{Bucket: &f.bucket, Key: &to, UploadId: &uploadID})
		cancel()
		var nsu *types.NoSuchUpload
		gone = lerr != nil && (errors.As(lerr, &nsu) || (errors.As(lerr, &ae) && ae.ErrorCode() == "NoSuchUpload"))
	}
	if gone {
		if ok, serr := fs.Exists(f, newname); serr == nil && ok {
			return fmt.Errorf("rename %s to %s: another rename completed it first: %w", oldname, newname, fs.ErrExist)
		}
	}
	if errors.Is(werr, fs.ErrNotExist) {
		return wrap("rename", oldname, err) // the source is gone
	}
	return werr
}

// Remove removes a file, or an empty directory's marker (a missing one is not an error).
func (f *FS) Remove(name string) error {
	key, err := f.key(name)
	if err != nil {
		return err
	}
	ctx, cancel := f.ctx()
	defer cancel()
	out, err := f.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &f.bucket, Prefix: aws.String(key + "/"), MaxKeys: aws.Int32(2)})
	if err != nil {
		return wrap("remove", name, err)
	}
	for _, o := range out.Contents {
		if aws.ToString(o.Key) != key+"/" {
			return fmt.Errorf("remove %s: the directory is not empty", name)
		}
	}
	// Deleting a missing key succeeds: the file and the marker, whichever is there.
	if _, err := f.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &f.bucket, Key: &key}); err != nil {
		return wrap("remove", name, err)
	}
	_, err = f.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &f.bucket, Key: aws.String(key + "/")})
	return wrap("remove", name, err)
}

// RemoveAll removes every object under name and aborts every upload there: a writer of a removed directory
// can publish nothing.
func (f *FS) RemoveAll(name string) error {
	key, err := f.key(name)
	if err != nil {
		return err
	}
	f.dirsMu.Lock()
	f.dirs = nil // directories may go with the tree: made again when files are published there
	f.dirsMu.Unlock()
	ctx, cancel := f.ctx()
	defer cancel()
	// The marker first: a Create that still finds it started its upload before, so the listing below sees it.
	if _, err := f.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &f.bucket, Key: aws.String(key + "/")}); err != nil {
		return wrap("remove all", name, err)
	}
	// Then the uploads: a file being written there can no longer be published.
	if err := f.abortUploads(ctx, key+"/", func(string, string) bool { return true }); err != nil {
		return wrap("remove all", name, err)
	}
	if err := f.deletePrefix(ctx, key+"/"); err != nil {
		return wrap("remove all", name, err)
	}
	_, err = f.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &f.bucket, Key: &key})
	return wrap("remove all", name, err)
}

// abortUploads aborts the multipart uploads under prefix that which picks (by key and upload id).
func (f *FS) abortUploads(ctx context.Context, prefix string, which func(key, id string) bool) error {
	var keyMarker, idMarker *string
	for {
		out, err := f.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &f.bucket, Prefix: &prefix, KeyMarker: keyMarker, UploadIdMarker: idMarker})
		if err != nil {
			return err
		}
		for _, up := range out.Uploads {
			if !which(aws.ToString(up.Key), aws.ToString(up.UploadId)) {
				continue
			}
			if _, err := f.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &f.bucket, Key: up.Key, UploadId: up.UploadId}); err != nil {
				if e := wrap("aborting an upload of", aws.ToString(up.Key), err); !errors.Is(e, fs.ErrNotExist) {
					return e
				}
			}
		}
		if !aws.ToBool(out.IsTruncated) || (out.NextKeyMarker == nil && out.NextUploadIdMarker == nil) {
			return nil
		}
		keyMarker, idMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

func (f *FS) deletePrefix(ctx context.Context, prefix string) error {
	p := s3.NewListObjectsV2Paginator(f.client, &s3.ListObjectsV2Input{Bucket: &f.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = types.ObjectIdentifier{Key: o.Key}
		}
		out, err := f.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &f.bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return err
		}
		if len(out.Errors) > 0 {
			return fmt.Errorf("deleting %s: %s", aws.ToString(out.Errors[0].Key), aws.ToString(out.Errors[0].Message))
		}
	}
	return nil
}

// MkdirAll puts a marker object for the directory and each parent.
func (f *FS) MkdirAll(name string) error {
	key, err := f.key(name)
	if err != nil {
		return err
	}
	ctx, cancel := f.ctx()
	defer cancel()
	for k := key; k != "" && k != f.prefix && k != "."; k = f.parentKey(k) {
		if _, err := f.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &f.bucket, Key: aws.String(k + "/"), Body: bytes.NewReader(nil), ContentLength: aws.Int64(0)}); err != nil {
			return wrap("mkdir", name, err)
		}
	}
	return nil
}

// ReadDir lists a directory: files, and subdirectories (common prefixes).
func (f *FS) ReadDir(name string) ([]fs.Entry, error) {
	key := f.prefix
	if name != "" && name != "." {
		k, err := f.key(name)
		if err != nil {
			return nil, err
		}
		key = k
	}
	prefix := ""
	if key != "" {
		prefix = key + "/"
	}
	ctx, cancel := f.ctx()
	defer cancel()
	var out []fs.Entry
	seen := false
	p := s3.NewListObjectsV2Paginator(f.client, &s3.ListObjectsV2Input{Bucket: &f.bucket, Prefix: &prefix, Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, wrap("list", name, err)
		}
		for _, cp := range page.CommonPrefixes {
			seen = true
			n := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), prefix), "/")
			if n == "" || n == "." || n == ".." {
				continue // a key with "//" or dot segments, not written by minipipe: never a path to follow
			}
			out = append(out, fs.Entry{Name: n, IsDir: true})
		}
		for _, o := range page.Contents {
			seen = true
			n := strings.TrimPrefix(aws.ToString(o.Key), prefix)
			if n == "" || n == "." || n == ".." || strings.Contains(n, "/") {
				continue // the directory's own marker, or an odd key
			}
			out = append(out, fs.Entry{Name: n, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	if !seen && key != f.prefix {
		return nil, fmt.Errorf("list %s: %w", name, fs.ErrNotExist)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Stat describes a file, or a directory (its marker or objects below it).
func (f *FS) Stat(name string) (fs.Entry, error) {
	key, err := f.key(name)
	if err != nil {
		return fs.Entry{}, err
	}
	ctx, cancel := f.ctx()
	defer cancel()
	head, err := f.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &f.bucket, Key: &key})
	if err == nil {
		return fs.Entry{Name: path.Base(key), Size: aws.ToInt64(head.ContentLength), ModTime: aws.ToTime(head.LastModified)}, nil
	}
	if e := wrap("stat", name, err); !errors.Is(e, fs.ErrNotExist) {
		return fs.Entry{}, e
	}
	ok, err := f.dirExists(ctx, key)
	if err != nil {
		return fs.Entry{}, wrap("stat", name, err)
	}
	if !ok {
		return fs.Entry{}, fmt.Errorf("stat %s: %w", name, fs.ErrNotExist)
	}
	return fs.Entry{Name: path.Base(key), IsDir: true}, nil
}

// URI is name's location for query engines and the metastore (s3a://, which Hadoop and Trino read).
func (f *FS) URI(name string) string {
	key, err := f.key(name)
	if err != nil {
		key = f.prefix
	}
	return "s3a://" + f.bucket + "/" + key
}

// Close releases nothing: the client holds only idle connections.
func (f *FS) Close() error { return nil }

var _ fs.FS = (*FS)(nil)
