package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// maxInFlight bounds a paced load's requests in flight: a server that stalls makes the
// load count errors rather than pile up goroutines without end.
const maxInFlight = 1024

// Paced sends perSecond requests a second, on a fixed schedule whatever the answers'
// pace (an open loop, like independent clients), until stop is closed. Each latency
// counts from when its request was due, so a stalled server shows in the figures rather
// than slowing the load down.
func Paced(ctx context.Context, perSecond int, stop <-chan struct{}, next Next) Result {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	interval := time.Second / time.Duration(max(1, perSecond))
	var mu sync.Mutex
	var wg sync.WaitGroup
	res := Result{Start: time.Now()}
	slots := make(chan struct{}, maxInFlight)
	fail := func(why string) {
		mu.Lock()
		defer mu.Unlock()
		res.Errors++
		if res.FirstErr == "" {
			res.FirstErr = why
		}
	}
	for i := 0; ; i++ {
		due := res.Start.Add(time.Duration(i) * interval)
		select {
		case <-stop:
		case <-ctx.Done():
		case <-time.After(time.Until(due)):
			select {
			case slots <- struct{}{}:
			default:
				fail(fmt.Sprintf("more than %d requests in flight", maxInFlight))
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				req, ok := next()
				resp, err := client.Do(req)
				if err != nil {
					fail(err.Error())
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || (ok != nil && !ok(b)) {
					fail(fmt.Sprintf("%d %s", resp.StatusCode, b))
					return
				}
				lat := time.Since(due)
				mu.Lock()
				res.Lat = append(res.Lat, lat)
				mu.Unlock()
			}()
			continue
		}
		break
	}
	wg.Wait()
	res.Elapsed = time.Since(res.Start)
	res.N = len(res.Lat)
	slices.Sort(res.Lat)
	return res
}
