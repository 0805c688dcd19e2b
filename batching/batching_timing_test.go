package batching

import (
	"testing"
	"time"
)

func BenchmarkBatchFill(b *testing.B) {
	row := make([]byte, 480)
	l := Limits{MaxRows: 50000, MaxBytes: 32 << 20, MaxAge: time.Second}
	b.ReportAllocs()
	b.SetBytes(int64(len(row)))
	bt := Get()
	now := time.Now()
	for b.Loop() {
		bt.Buf.B = append(bt.Buf.B, row...)
		bt.EndRow(now)
		if l.Full(bt) {
			Put(bt)
			bt = Get()
		}
	}
	Put(bt)
}

func BenchmarkBudget(b *testing.B) {
	bd := NewBudget(1 << 30)
	b.ReportAllocs()
	for b.Loop() {
		bd.Acquire(480)
		bd.Release(480)
	}
}
