package api_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/parleyhq/parley/internal/api"
	"github.com/parleyhq/parley/internal/store"
)

// listPage is one page of the users, conversations or recipients API.
type listPage struct {
	Users []struct {
		ChannelUserID string `json:"channel_user_id"`
	} `json:"users"`
	Conversations []struct {
		MessageID string `json:"message_id"`
	} `json:"conversations"`
	Recipients []struct {
		ChannelUserID string `json:"channelUserId"`
	} `json:"recipients"`
	PageNumber int     `json:"page_number"`
	PageSize   int     `json:"page_size"`
	Total      int     `json:"total"`
	NextCursor *string `json:"next_cursor"`
}

func (p listPage) ids() []string {
	var out []string
	for _, u := range p.Users {
		out = append(out, u.ChannelUserID)
	}
	for _, m := range p.Conversations {
		out = append(out, m.MessageID)
	}
	for _, r := range p.Recipients {
		out = append(out, r.ChannelUserID)
	}
	return out
}

// pageOf gets a page and checks it is a 200.
func (e *env) pageOf(t *testing.T, path string) listPage {
	t.Helper()
	r := e.do("GET", path, e.a.APIKey, nil)
	wantStatus(t, r, 200, api.CodeSuccess)
	var p listPage
	r.obj(t, &p)
	return p
}

// walk reads a list to its end twice, by page_number and by next_cursor, checks both
// agree page by page (items, page_number, total) and returns the items.
func (e *env) walk(t *testing.T, base string, size, total int) []string {
	t.Helper()
	var byNumber, byCursor []string
	var cursor *string
	pages := (total + size - 1) / size
	for n := 1; n <= pages+1; n++ {
		p := e.pageOf(t, fmt.Sprintf("%s&page_size=%d&page_number=%d", base, size, n))
		if p.Total != total || p.PageNumber != n || p.PageSize != size {
			t.Fatalf("page %d: total %d, page_number %d, page_size %d; want %d, %d, %d", n, p.Total, p.PageNumber, p.PageSize, total, n, size)
		}
		// The last page has no next_cursor; a page past the end is empty.
		switch {
		case n < pages && (p.NextCursor == nil || len(p.ids()) != size):
			t.Fatalf("page %d of %d: %d items, next_cursor %v", n, pages, len(p.ids()), p.NextCursor)
		case n >= pages && p.NextCursor != nil:
			t.Fatalf("page %d of %d has a next_cursor", n, pages)
		case n > pages && len(p.ids()) != 0:
			t.Fatalf("page %d past the end has %v", n, p.ids())
		}
		byNumber = append(byNumber, p.ids()...)
		if n == 1 {
			byCursor, cursor = p.ids(), p.NextCursor
			continue
		}
		if n > pages {
			continue
		}
		if cursor == nil {
			t.Fatalf("no cursor to page %d", n)
		}
		c := e.pageOf(t, fmt.Sprintf("%s&page_size=%d&cursor=%s", base, size, url.QueryEscape(*cursor)))
		if !slices.Equal(c.ids(), p.ids()) || c.PageNumber != n || c.Total != total {
			t.Fatalf("page %d by cursor: %v (page_number %d, total %d); by number: %v", n, c.ids(), c.PageNumber, c.Total, p.ids())
		}
		byCursor, cursor = append(byCursor, c.ids()...), c.NextCursor
	}
	if !slices.Equal(byNumber, byCursor) || len(byNumber) != total {
		t.Fatalf("by number %v, by cursor %v, want %d items", byNumber, byCursor, total)
	}
	return byNumber
}

// TestPagingByNumberAndCursor: the users and conversations APIs' page_number and
// next_cursor give the same pages, in order, with the last page marked and a cursor that
// survives inserts; a bad cursor is a 400 in the envelope.
func TestPagingByNumberAndCursor(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		bot, other := mustBot(t, e, e.a), mustBot(t, e, e.b)
		addUser := func(botID int64, cuid, tier string) int64 {
			t.Helper()
			u, err := e.st.UpsertUser(ctx, e.st.Writer(), store.UserUpsert{BotID: botID, ChannelUserID: cuid, Channel: "whatsapp",
				Attrs: map[string]string{"tier": tier}})
			if err != nil {
				t.Fatal(err)
			}
			return u.ID
		}
		var gold []string
		for i := range 23 {
			cuid, tier := fmt.Sprintf("9190000000%02d", i), "silver"
			if i%4 != 3 {
				tier = "gold"
				gold = append(gold, cuid)
			}
			addUser(bot.ID, cuid, tier)
		}
		addUser(other.ID, "919100000000", "gold") // another bot's user is not listed
		// 17 messages, several at the same millisecond: ties are ordered by id.
		uid := addUser(bot.ID, "919200000000", "none")
		var msgs []string
		addMsg := func(at int64) {
			t.Helper()
			id, _, err := e.st.InsertMessage(ctx, e.st.Writer(), store.Message{BotID: bot.ID, UserID: uid, Channel: "whatsapp",
				Sender: store.SenderUser, Type: "text", Text: fmt.Sprint(at), Status: store.MsgReceived, CreatedAt: at})
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, fmt.Sprint(id))
		}
		for i := range 17 {
			addMsg(1_000_000 + int64(i/3))
		}

		usersBase := botPath("v1.0", e.a) + "/users?attribute_name=tier&attribute_value=gold"
		convBase := botPath("v1.0", e.a) + "/channel-user/919200000000/conversations?start_date=0"
		for _, size := range []int{1, 4, 5, 17, 100} {
			if got := e.walk(t, usersBase, size, len(gold)); !slices.Equal(got, gold) {
				t.Fatalf("users by %d: %v, want %v", size, got, gold)
			}
			if got := e.walk(t, convBase, size, len(msgs)); !slices.Equal(got, msgs) {
				t.Fatalf("conversation by %d: %v, want %v", size, got, msgs)
			}
		}

		// A cursor taken before inserts goes on where it was: the new items come at the
		// end, none twice, none skipped.
		p := e.pageOf(t, usersBase+"&page_size=5")
		c := e.pageOf(t, convBase+"&page_size=5")
		for i := range 3 {
			cuid := fmt.Sprintf("9193000000%02d", i)
			addUser(bot.ID, cuid, "gold")
			gold = append(gold, cuid)
			addMsg(2_000_000 + int64(i))
		}
		for _, l := range []struct {
			first listPage
			base  string
			want  []string
		}{{p, usersBase, gold}, {c, convBase, msgs}} {
			got, next, n := l.first.ids(), l.first.NextCursor, 1
			for next != nil {
				n++
				q := e.pageOf(t, l.base+"&page_size=5&cursor="+url.QueryEscape(*next))
				if q.PageNumber != n || q.Total != len(l.want) {
					t.Fatalf("after inserts, page %d: page_number %d, total %d", n, q.PageNumber, q.Total)
				}
				got, next = append(got, q.ids()...), q.NextCursor
			}
			if !slices.Equal(got, l.want) {
				t.Fatalf("after inserts: %v, want %v", got, l.want)
			}
		}

		// Bad cursors: not base64, not ours, another list's, out of range.
		usersCursor := *p.NextCursor
		enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
		for _, bad := range []struct{ path, cursor string }{
			{usersBase, "!!!"},
			{usersBase, enc("hello")},
			{usersBase, enc("u.x.0.5")},
			{usersBase, enc("u.1.0.5")},
			{usersBase, enc("u.2.0.-5")},
			{usersBase, enc("u.99999999999.0.5")},
			{convBase, usersCursor},
			{botPath("v1.0", e.a) + "/users?attribute_name=tier&attribute_value=gold&after=", "%%%"},
		} {
			r := e.do("GET", bad.path+"&cursor="+url.QueryEscape(bad.cursor), e.a.APIKey, nil)
			wantStatus(t, r, 400, api.CodeInvalidInput)
			if r.Status.Desc == "" || r.Status.Details == "" {
				t.Fatalf("cursor %q: envelope %s", bad.cursor, r.Body)
			}
		}
		// after is the cursor's other name.
		q := e.pageOf(t, usersBase+"&page_size=5&after="+url.QueryEscape(usersCursor))
		if !slices.Equal(q.ids(), gold[5:10]) || q.PageNumber != 2 {
			t.Fatalf("after=: %v page %d, want %v", q.ids(), q.PageNumber, gold[5:10])
		}
	})
}
