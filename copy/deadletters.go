package pgcopy

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// DeadLetter is a record that cannot become a row.
type DeadLetter struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []byte // JSON text or nil; text that is not JSON is stored as a JSON string
	Target    string // target table; empty: Batch.Table.Name
	Error     string
	Reason    string // metric label, not stored
}

// insertDeadLetters inserts the decoder's and PostgreSQL's rejections.
// A record already dead-lettered for this group and target (same topic,
// partition, offset) is left as it is: a rerun of a batch adds nothing.
func (w *Writer) insertDeadLetters(ctx context.Context, t *tx) error {
	all := t.b.DeadLetters
	if len(t.rejects) > 0 {
		all = append(all[:len(all):len(all)], t.rejects...)
	}
	var p params
	a := p.array(oidText)
	for i := range all {
		a.str(cleanText(all[i].Topic))
	}
	p.endArray(oidTextArr)
	a = p.array(oidInt4)
	for i := range all {
		a.int4(all[i].Partition)
	}
	p.endArray(oidInt4Arr)
	a = p.array(oidInt8)
	for i := range all {
		a.int8(all[i].Offset)
	}
	p.endArray(oidInt8Arr)
	for _, f := range []func(*DeadLetter) []byte{
		func(d *DeadLetter) []byte { return d.Key },
		func(d *DeadLetter) []byte { return d.Value },
	} {
		a = p.array(oidBytea)
		for i := range all {
			if v := f(&all[i]); v != nil {
				a.bytes(v)
			} else {
				a.null()
			}
		}
		p.endArray(oidByteaArr)
	}
	a = p.array(oidJSONB)
	for i := range all {
		if h := all[i].Headers; h != nil {
			a.jsonb(safeJSON(h))
		} else {
			a.null()
		}
	}
	p.endArray(oidJSONBArr)
	a = p.array(oidText)
	for i := range all {
		target := all[i].Target
		if target == "" {
			target = t.b.Table.Name
		}
		a.str(cleanText(target))
	}
	p.endArray(oidTextArr)
	a = p.array(oidText)
	for i := range all {
		a.str(cleanText(all[i].Error))
	}
	p.endArray(oidTextArr)
	p.text(w.group)
	w.roundTrip()
	if _, err := t.conn.ExecParams(ctx, w.dlSQL, p.args(), p.oids, p.formats, nil).Close(); err != nil {
		return fmt.Errorf("cannot insert %d dead letters into %s: %w", len(all), pgx.Identifier{w.schema, "dead_letters"}.Sanitize(), err)
	}
	return nil
}

// cleanText makes s acceptable to a text column: valid UTF-8, no NUL.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "")
}

// safeJSON returns h if jsonb accepts it, else h as a JSON string.
func safeJSON(h []byte) []byte {
	if json.Valid(h) && !strings.Contains(string(h), `\u0000`) {
		return h
	}
	s, _ := json.Marshal(cleanText(string(h)))
	return s
}
