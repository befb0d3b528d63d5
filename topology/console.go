package topology

import (
	"context"
	"log/slog"
	"path/filepath"
	"sort"
	"time"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/internal/query"
	"github.com/minipipe/minipipe/internal/supervise"
	"github.com/minipipe/minipipe/processors/commit"
	"github.com/minipipe/minipipe/processors/console"
	"github.com/minipipe/minipipe/processors/dlq"
	"github.com/minipipe/minipipe/processors/registry"
	"github.com/minipipe/minipipe/sinks/fs"
)

// consoleDeps wires the console to the warehouse, the ingest processors' state, the pipeline's lag
// reading, the registry and this instance's restart counts.
func consoleDeps(cfg Config, kcfg kafka.Config, wh fs.FS, reg *registry.Registry, pipe func() *Pipeline, monitor *supervise.Monitor, log *slog.Logger) console.Deps {
	d := console.Deps{
		Registry: reg.Handler(),
		Decode:   console.RegistryDecoder(reg.Store().Parsed),
		Schema: func(id int) (*avro.Schema, string, error) {
			s, _, err := reg.Store().Parsed(id)
			if err != nil {
				return nil, "", err
			}
			rec, err := reg.Store().SchemaByID(id)
			if err != nil {
				return nil, "", err
			}
			return s, rec.Schema, nil
		},
		Subjects: func() ([]console.Subject, error) {
			st := reg.Store()
			names, err := st.Subjects(false)
			if err != nil {
				return nil, err
			}
			out := make([]console.Subject, 0, len(names))
			for _, n := range names {
				vs, err := st.Versions(n)
				if err != nil {
					return nil, err
				}
				s := console.Subject{Name: n, Versions: []int{}, IDs: []int{}}
				for _, v := range vs {
					if !v.Deleted {
						s.Versions = append(s.Versions, v.Version)
						s.IDs = append(s.IDs, v.ID)
					}
				}
				if level, _, err := st.EffectiveLevel(n); err == nil {
					s.Compatibility = string(level)
				}
				out = append(out, s)
			}
			return out, nil
		},
		Complete: func(t console.Table) map[string]bool {
			done := map[string]bool{}
			for _, p := range t.Partitions {
				dir := p.Dir
				if dir == "" {
					dir = fs.Join(t.Location, p.Path)
				}
				if _, err := wh.Stat(fs.Join(dir, commit.SuccessFile)); err == nil {
					done[p.Path] = true
				}
			}
			return done
		},
	}
	if local, ok := wh.(interface {
		LocalPath(string) (string, error)
		Root() string
	}); ok {
		root := local.Root()
		d.Views = func(tables []console.Table) ([]query.View, []string, error) {
			views := make([]query.View, 0, len(tables))
			for _, t := range tables {
				v := query.View{Name: t.Name, PartitionFields: t.PartitionColumns}
				if t.Files > 0 {
					// One glob per partition directory (not **: a compacted partition's replaced files, and
					// its compaction's directory, are not all the partition's): new files of a partition show
					// without a new view.
					seen := map[string]bool{}
					for _, p := range t.Partitions {
						dir := p.Dir
						if dir == "" {
							dir = fs.Join(t.Location, p.Path)
						}
						if seen[dir] || p.Files == 0 {
							continue
						}
						seen[dir] = true
						path, err := local.LocalPath(dir)
						if err != nil {
							return nil, nil, err
						}
						v.Files = append(v.Files, filepath.Join(path, "*.parquet"))
					}
				}
				views = append(views, v)
			}
			return views, []string{root}, nil
		}
	}
	d.Snapshot = func(ctx context.Context) (*console.Snapshot, error) {
		snap := &console.Snapshot{Restarts: monitor.Restarts()}
		t0 := time.Now()
		tables, err := ListTables(wh)
		if err != nil {
			return nil, err
		}
		t1 := time.Now()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		stats, serr := readSourceStats(sctx, kcfg, cfg, 3*time.Second)
		cancel()
		if serr != nil {
			snap.Errors = append(snap.Errors, "source topics: "+serr.Error())
		}
		if took := time.Since(t0); took > 10*time.Second {
			log.Warn("the console's overview was slow to read", "tables", len(tables), "manifests", t1.Sub(t0), "topics", len(stats), "source_stats", time.Since(t1))
		}
		topicOf := map[string]string{}
		lag := map[string][]console.TopicPartition{}
		if p := pipe(); p != nil {
			for _, pt := range p.lag.points() {
				if pt.group == p.names.CommitGroup() {
					continue
				}
				lag[pt.topic] = append(lag[pt.topic], console.TopicPartition{Partition: pt.partition, End: pt.end, Committed: pt.committed, Lag: pt.lag})
			}
		}
		for _, s := range stats {
			accepted, repeats, _, rejected, _ := s.Total()
			t := console.Topic{Name: s.Topic, Table: s.Table, Accepted: accepted, Repeats: repeats, Rejected: rejected,
				DeadLetters: dlq.Topic(s.Topic), Partitions: lag[s.Topic]}
			for _, w := range s.Watermarks {
				t.Late += w.Late
			}
			if t.Partitions == nil {
				t.Partitions = []console.TopicPartition{}
			}
			sort.Slice(t.Partitions, func(i, j int) bool { return t.Partitions[i].Partition < t.Partitions[j].Partition })
			topicOf[s.Table] = s.Topic
			snap.Topics = append(snap.Topics, t)
		}
		for _, t := range tables {
			ct := console.Table{Name: t.Name, Topic: topicOf[t.Name], Generation: t.Generation, Location: t.Location,
				PartitionColumns: t.PartitionColumns, Files: t.Files, Rows: t.Rows, Bytes: t.Bytes, SchemaIDs: t.SchemaIDs,
				LastCommit: t.LastCommit, Partitions: make([]console.Partition, len(t.Partitions))}
			if ct.SchemaIDs == nil {
				ct.SchemaIDs = []int{}
			}
			for i, p := range t.Partitions {
				ct.Partitions[i] = console.Partition{Path: p.Path, Dir: p.Dir, Files: p.Files, Rows: p.Rows, Bytes: p.Bytes, SchemaIDs: p.SchemaIDs, LastCommit: p.LastCommit}
			}
			snap.Tables = append(snap.Tables, ct)
		}
		if snap.Tables == nil {
			snap.Tables = []console.Table{}
		}
		if snap.Topics == nil {
			snap.Topics = []console.Topic{}
		}
		return snap, nil
	}
	return d
}
