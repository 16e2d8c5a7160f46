package imapappend_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"imapcopy.dev/pkg/imapappend"
	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
)

// BenchmarkAppend appends 500 messages of about 50 KB to Dovecot over TLS on loopback,
// in MULTIAPPEND batches and as pipelined single APPENDs.
func BenchmarkAppend(b *testing.B) {
	const n = 500
	raws := make([][]byte, n)
	var total int64
	for i := range raws {
		raws[i] = rawMessage(i, 30<<10+(i*7919)%(40<<10), "")
		total += int64(len(raws[i]))
	}
	for _, bc := range []struct {
		name    string
		options imapappend.Config
	}{
		{"multiappend", imapappend.Config{}},
		{"single", imapappend.Config{NoMultiappend: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			acct := servers[imaptest.FlavourSlash].AddUser(b)
			ctx := context.Background()
			a, err := imapappend.Dial(ctx, acct, imapconn.Options{}, bc.options)
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			b.SetBytes(total)
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				b.StopTimer()
				mailbox := fmt.Sprintf("bench%d", it)
				if err := imaptest.CreateFolder(ctx, acct, mailbox); err != nil {
					b.Fatal(err)
				}
				msgs := make([]imapappend.Message, n)
				for i, raw := range raws {
					msgs[i] = imapappend.Message{Flags: []string{`\Seen`}, Size: int64(len(raw)), Body: bytes.NewReader(raw)}
				}
				b.StartTimer()
				results, err := a.Append(ctx, mailbox, msgs)
				if err != nil {
					b.Fatal(err)
				}
				for i, r := range results {
					if r.Err != nil {
						b.Fatalf("message %d: %v", i, r.Err)
					}
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
