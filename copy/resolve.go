package pgcopy

import "bytes"

// Resolving a change batch in the writer. The apply function's key query
// (ops.go) finds, per key, its last delete and the upserts that survive
// it, and ranks them: sorts, a window and an anti-join over every staged
// tuple, 75-115 ms of a 50,000-change batch. The writer sorts every
// batch's keys anyway (prepare), so for a claimed batch it resolves each
// key itself, by the same rules, and stages only the rows the function
// uses, each with its role (roleColumn), the guard of its key's last
// delete (delOffColumn) and its rank (rankColumn); the function then
// reads them as its key query would have returned them.
//
// The writer groups keys by their bytes, PostgreSQL by its equality. The
// two agree for the key types whose binary form is canonical (byteKey),
// text under a deterministic collation among them; a table with a key of
// another type (numeric, whose scale is in its bytes, floats, bpchar, text
// under a nondeterministic collation) is resolved by the function. So is
// a guard that is not int8, and the careful rerun, which applies seq
// ranges.

// Roles of a staged row of a resolved batch, the flags of the key query's
// columns.
const (
	roleDel     = 1 << iota // the key has a delete
	roleWin                 // the row is an upsert to apply
	roleFirst               // the key's first row (its delete goes there)
	roleLast                // the key's winner (counted as affected)
	rolePlain               // no delete, and under update a winner marking nothing
	roleDelOnly             // a delete and no upsert after it
)

// opsRow is a row a resolved batch stages: tuple i with its role, the
// guard of its key's last delete (delOffOK false: NULL, or no delete) and
// its rank among its key's rows, 1 the winner (0: NULL).
type opsRow struct {
	i        int32
	role     uint16
	delOffOK bool
	rank     int32
	delOff   int64
}

// byteKey reports whether two values of target column c are equal in
// PostgreSQL exactly when their binary forms are: integers, uuid, dates
// and timestamps, bool, bytea, and text or varchar under a deterministic
// collation. Not bpchar (trailing spaces do not count), numeric (1.0 and
// 1.00 are equal), floats (-0 and 0) or other types. The direct path
// (direct.go) and the writer's resolution of change batches group keys
// by their bytes, so both need every key column to be one of these.
func byteKey(c targetColumn) bool {
	switch c.baseOID {
	case oidBool, oidBytea, oidInt2, oidInt4, oidInt8, oidUUID, oidDate, oidTimestamp, oidTimestamptz:
		return true
	case oidText, oidVarchar:
		return c.deterministic
	}
	return false
}

// resolver holds what the rules need of one batch, and a key's changes
// (its group) with their seq and guard read once.
type resolver struct {
	b *Batch
	// guard is the OffsetColumn's field (-1: none); byGuard orders a
	// key's changes by it first (PolicyUpdate with a guard).
	guard   int
	byGuard bool
	// Per change of the group being resolved, by position.
	idx []int32
	seq []int64
	g   []int64
	gok []bool
}

// load reads the seq and guard of the changes of group grp.
func (x *resolver) load(grp []keyEnt) {
	x.idx, x.seq, x.g, x.gok = x.idx[:0], x.seq[:0], x.g[:0], x.gok[:0]
	for _, e := range grp {
		i := int(e.i)
		sq, _ := x.b.seq(i) // 0 for a tuple without one, which COPY rejects
		var gv int64
		ok := false
		if x.guard >= 0 {
			gv, ok = TupleInt8(x.b.Data[x.b.start(i):x.b.Ends[i]], x.guard)
		}
		x.idx, x.seq, x.g, x.gok = append(x.idx, e.i), append(x.seq, sq), append(x.g, gv), append(x.gok, ok)
	}
}

// before reports whether change a comes before change b (positions in the
// group) in the order that picks a key's last delete and, under
// PolicyUpdate, its winner: guard descending, NULLs last (with byGuard),
// then seq descending.
func (x *resolver) before(a, b int) bool {
	if x.byGuard {
		switch {
		case x.gok[a] && !x.gok[b]:
			return true
		case !x.gok[a] && x.gok[b]:
			return false
		case x.gok[a] && x.gok[b] && x.g[a] != x.g[b]:
			return x.g[a] > x.g[b]
		}
	}
	return x.seq[a] > x.seq[b]
}

// resolveOps resolves the keys of ops batch b, as sorted by prepare
// (d.sorted), into d.opsRows: per key, as the apply function's key query
// does, its last delete and the upserts no delete of the key comes after
// (with byGuard: a higher guard, or an equal or NULL one and a later seq;
// otherwise a later seq); its winner among those, the first in seq order
// under PolicyIgnore, the first in before's order under PolicyUpdate;
// and under update (PolicyUpdate with columns outside the key), when the
// winner marks a column, every such upsert, ranked in before's order.
func (d *directKeys) resolveOps(b *Batch, policy Policy, update bool, guard int) {
	x := &d.res
	*x = resolver{b: b, guard: guard, byGuard: policy == PolicyUpdate && guard >= 0, idx: x.idx, seq: x.seq, g: x.g, gok: x.gok}
	d.opsRows = d.opsRows[:0]
	s := d.sorted
	for j := 0; j < len(s); {
		k := j + 1
		for k < len(s) && s[k].pre == s[j].pre && bytes.Equal(d.key(s[k].i), d.key(s[j].i)) {
			k++
		}
		if k == j+1 {
			d.resolveOne(x, s[j].i, policy, update)
		} else {
			x.load(s[j:k])
			d.resolveKey(x, policy, update)
		}
		j = k
	}
	x.b = nil
}

// resolveOne resolves a key changed once, by tuple i, as resolveKey
// would, reading the tuple only for a delete's guard.
func (d *directKeys) resolveOne(x *resolver, i int32, policy Policy, update bool) {
	b := x.b
	row := opsRow{i: i, role: roleFirst | roleLast}
	switch {
	case b.Ops != nil && b.Ops[i] == RowDelete:
		row.role |= roleDel | roleDelOnly
		if x.guard >= 0 {
			row.delOff, row.delOffOK = TupleInt8(b.Data[b.start(int(i)):b.Ends[i]], x.guard)
		}
	default:
		row.role |= roleWin | rolePlain
		if policy == PolicyUpdate && update {
			row.rank = 1
			if b.Unchanged != nil && b.Unchanged[i] != 0 {
				row.role &^= rolePlain
			}
		}
	}
	d.opsRows = append(d.opsRows, row)
}

// resolveKey resolves the changes x holds, one key's, and appends its rows.
func (d *directKeys) resolveKey(x *resolver, policy Policy, update bool) {
	b := x.b
	isDel := func(p int) bool { return b.Ops != nil && b.Ops[x.idx[p]] == RowDelete }
	// The last delete, and what tells whether a delete comes after an
	// upsert: the latest delete by seq, the latest with a NULL guard, and
	// the highest (guard, seq) among those with one.
	last := -1
	var maxSeq, maxNullSeq, topG, topSeq int64
	hasDel, hasNull, hasTop := false, false, false
	for p := range x.idx {
		if !isDel(p) {
			continue
		}
		if last < 0 || x.before(p, last) {
			last = p
		}
		sq := x.seq[p]
		if !hasDel || sq > maxSeq {
			maxSeq = sq
		}
		hasDel = true
		if gv := x.g[p]; x.gok[p] {
			if !hasTop || gv > topG || gv == topG && sq > topSeq {
				topG, topSeq = gv, sq
			}
			hasTop = true
		} else if !hasNull || sq > maxNullSeq {
			maxNullSeq, hasNull = sq, true
		}
	}
	// The upserts that survive the deletes, by position.
	surv := d.surv[:0]
	for p := range x.idx {
		if isDel(p) {
			continue
		}
		if hasDel {
			sq, gv := x.seq[p], x.g[p]
			var after bool
			switch {
			case !x.byGuard || !x.gok[p]:
				after = maxSeq > sq
			default:
				after = hasNull && maxNullSeq > sq || hasTop && (topG > gv || topG == gv && topSeq > sq)
			}
			if after {
				continue
			}
		}
		surv = append(surv, int32(p))
	}
	d.surv = surv
	row := opsRow{}
	if last >= 0 {
		row.role |= roleDel
		row.delOff, row.delOffOK = x.g[last], x.gok[last]
	}
	if len(surv) == 0 {
		row.i = x.idx[last]
		row.role |= roleFirst | roleLast | roleDelOnly
		d.opsRows = append(d.opsRows, row)
		return
	}
	row.role |= roleWin
	if last < 0 {
		row.role |= rolePlain
	}
	if policy != PolicyUpdate {
		// The first upsert by seq wins.
		w := surv[0]
		for _, p := range surv[1:] {
			if x.seq[p] < x.seq[w] {
				w = p
			}
		}
		row.i = x.idx[w]
		row.role |= roleFirst | roleLast
		d.opsRows = append(d.opsRows, row)
		return
	}
	// Insertion sort in before's order: a key has few changes.
	for a := 1; a < len(surv); a++ {
		for c := a; c > 0 && x.before(int(surv[c]), int(surv[c-1])); c-- {
			surv[c], surv[c-1] = surv[c-1], surv[c]
		}
	}
	win := x.idx[surv[0]]
	if !update || b.Unchanged == nil || b.Unchanged[win] == 0 {
		row.i = win
		if update {
			row.rank = 1
		}
		row.role |= roleFirst | roleLast
		d.opsRows = append(d.opsRows, row)
		return
	}
	// The winner marks a column: every surviving upsert, oldest first.
	row.role &^= rolePlain
	for r, p := range surv {
		o := row
		o.i, o.rank = x.idx[p], int32(r+1)
		if r == len(surv)-1 {
			o.role |= roleFirst
		}
		if r == 0 {
			o.role |= roleLast
		}
		d.opsRows = append(d.opsRows, o)
	}
}
