package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"

	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/processors/registry"
)

// ReadAudit reads the registry's audit trail (audit/… records of the registry topic), oldest first.
func ReadAudit(ctx context.Context, kcfg kafka.Config, topic string) ([]registry.AuditRecord, error) {
	client, err := sarama.NewClient(kcfg.Brokers, kcfg.Sarama())
	if err != nil {
		return nil, fmt.Errorf("connecting to Kafka: %w", err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("the registry topic %s: %w", topic, err)
	}
	var out []registry.AuditRecord
	for _, p := range parts {
		err := readToEnd(ctx, client, topic, p, func(key, value []byte) {
			if !strings.HasPrefix(string(key), "audit/") || value == nil {
				return
			}
			var a registry.AuditRecord
			if json.Unmarshal(value, &a) == nil {
				out = append(out, a)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

func auditCommand(stdout, stderr io.Writer) *cobra.Command {
	var asJSON bool
	var subject, principal string
	var since time.Duration
	cmd := command("audit", "List the schema registry's changes: who registered, deleted or configured what, and when",
		cobra.NoArgs, stderr, func(cmd *cobra.Command, cfg Config, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			kcfg, err := cfg.KafkaConfig("minipipe-audit")
			if err != nil {
				return err
			}
			all, err := ReadAudit(ctx, kcfg, cfg.RegistryTopic)
			if err != nil {
				return err
			}
			var recs []registry.AuditRecord
			for _, a := range all {
				if subject != "" && a.Subject != subject || principal != "" && a.Principal != principal ||
					since > 0 && time.Since(a.Time) > since {
					continue
				}
				recs = append(recs, a)
			}
			if asJSON {
				if recs == nil {
					recs = []registry.AuditRecord{}
				}
				return writeJSON(stdout, recs)
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tPRINCIPAL\tOPERATION\tSUBJECT\tRESULT\tCHANGES")
			for _, a := range recs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Time.UTC().Format(time.RFC3339), a.Principal, a.Op, a.Subject,
					strings.TrimSpace(string(a.Result)), strings.Join(a.Changes, " "))
			}
			return tw.Flush()
		})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&subject, "subject", "", "only this subject's changes")
	cmd.Flags().StringVar(&principal, "principal", "", "only this user's changes")
	cmd.Flags().DurationVar(&since, "since", 0, "only changes this recent (e.g. 24h)")
	return cmd
}
