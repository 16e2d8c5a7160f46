package syncstatus

import (
	"cmp"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// Page sizes of List.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// ErrBadPageToken: the page token was not made by List.
var ErrBadPageToken = errors.New("invalid page token: pass the next_page_token of the previous page, unchanged")

// ListQuery selects the syncs List returns. The zero value selects every sync.
type ListQuery struct {
	// States selects syncs in these states; none: every state.
	States []imapcopyv1.SyncState
	// DestinationDomain selects syncs whose destination address ends in
	// "@"+DestinationDomain (case-insensitive); empty: every domain.
	DestinationDomain string
	// OnlyCaller selects the syncs whose status records Caller (SyncStatus.caller).
	OnlyCaller bool
	Caller     string
	// CreatedAfter (inclusive) and CreatedBefore (exclusive) bound created_at; zero:
	// unbounded.
	CreatedAfter, CreatedBefore time.Time
	// PageSize is at most MaxPageSize; 0 takes DefaultPageSize.
	PageSize int
	// PageToken is the NextPageToken of the previous page.
	PageToken string
}

// ListPage is one page of List.
type ListPage struct {
	// Statuses, newest first (created_at, then key).
	Statuses []*imapcopyv1.SyncStatus
	// NextPageToken is empty on the last page.
	NextPageToken string
	// Totals counts the syncs matching every filter but States, by state.
	Totals map[imapcopyv1.SyncState]int
}

// indexEntry is what List needs to know of a sync without reading its status: the
// Redis store keeps one per address in its index, the KV store reads it from the
// status.
type indexEntry struct {
	Key     string               `json:"-"`           // KeyOf(source)
	Created int64                `json:"c"`           // created_at, Unix milliseconds
	State   imapcopyv1.SyncState `json:"s"`           // the state
	Domain  string               `json:"d,omitempty"` // the destination's domain, lowercase
	Caller  string               `json:"o,omitempty"` // SyncStatus.caller
	Expires int64                `json:"e,omitempty"` // when a terminal status expires, Unix ms; 0: never
}

func entryOf(key string, st *imapcopyv1.SyncStatus, expires time.Time) indexEntry {
	e := indexEntry{
		Key:     key,
		Created: st.GetCreatedAt().AsTime().UnixMilli(),
		State:   st.GetState(),
		Domain:  domainOf(st.GetDestinationEmail()),
		Caller:  st.GetCaller(),
	}
	if !expires.IsZero() {
		e.Expires = expires.UnixMilli()
	}
	return e
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}

// pageToken is the position after the last entry of a page: its created time and
// key, which order every entry. Seeking past a position, rather than counting an
// offset, keeps the next pages stable while syncs start.
func pageToken(e indexEntry) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(e.Created, 10) + "." + e.Key))
}

func parsePageToken(tok string) (created int64, key string, err error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, "", ErrBadPageToken
	}
	c, k, ok := strings.Cut(string(b), ".")
	if !ok || k == "" {
		return 0, "", ErrBadPageToken
	}
	created, err = strconv.ParseInt(c, 10, 64)
	if err != nil {
		return 0, "", ErrBadPageToken
	}
	return created, k, nil
}

// newer orders entries newest first, then by key.
func newer(a, b indexEntry) int {
	if c := cmp.Compare(b.Created, a.Created); c != 0 {
		return c
	}
	return cmp.Compare(a.Key, b.Key)
}

// selectPage filters entries (modified in place) by q at now, counts the totals,
// and returns the entries of the requested page and the next token.
func selectPage(entries []indexEntry, q ListQuery, now time.Time) (page []indexEntry, next string, totals map[imapcopyv1.SyncState]int, err error) {
	size := q.PageSize
	switch {
	case size < 0 || size > MaxPageSize:
		return nil, "", nil, errors.New("page size must be between 0 and " + strconv.Itoa(MaxPageSize))
	case size == 0:
		size = DefaultPageSize
	}
	var after *indexEntry
	if q.PageToken != "" {
		c, k, err := parsePageToken(q.PageToken)
		if err != nil {
			return nil, "", nil, err
		}
		after = &indexEntry{Created: c, Key: k}
	}
	domain := strings.ToLower(strings.TrimSpace(q.DestinationDomain))
	totals = make(map[imapcopyv1.SyncState]int)
	matched := entries[:0]
	for _, e := range entries {
		switch {
		case e.Expires != 0 && e.Expires <= now.UnixMilli(),
			domain != "" && e.Domain != domain,
			q.OnlyCaller && e.Caller != q.Caller,
			!q.CreatedAfter.IsZero() && e.Created < q.CreatedAfter.UnixMilli(),
			!q.CreatedBefore.IsZero() && e.Created >= q.CreatedBefore.UnixMilli():
			continue
		}
		totals[e.State]++
		if len(q.States) > 0 && !slices.Contains(q.States, e.State) {
			continue
		}
		if after != nil && newer(*after, e) >= 0 {
			continue
		}
		matched = append(matched, e)
	}
	slices.SortFunc(matched, newer)
	if len(matched) > size {
		matched = matched[:size]
		next = pageToken(matched[size-1])
	}
	return matched, next, totals, nil
}
