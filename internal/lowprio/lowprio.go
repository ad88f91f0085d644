// Package lowprio runs background work (a broadcast's fan-out) on OS threads that the
// kernel schedules after the server's other threads. Go has no goroutine priorities: on
// a machine whose cores are all busy, a trigger's goroutines wait for the kernel's time
// slices behind the fan-out's, whatever Go's scheduler does. A thread with a higher nice
// value gets a much smaller share of a busy core, and no less of an idle one, so
// background work still uses every spare cycle.
package lowprio

import "sync"

// Nice is how much a background thread's nice value is raised above the process's. At
// 10 the kernel weighs it about a tenth of a normal thread.
const Nice = 10

// Pin locks the calling goroutine to its OS thread and lowers that thread's priority
// (on Linux; elsewhere it does nothing). The goroutine must not unlock the thread: when
// it returns, its thread exits with it instead of going back to Go's pool with the
// lower priority. An error says the priority could not be lowered; the goroutine stays
// locked and runs at normal priority.
func Pin() error { return pin() }

// Worker runs functions one at a time on a goroutine pinned at low priority, for a
// goroutine that must run some of its work in the background and the rest not.
type Worker struct {
	fns  chan func()
	done chan struct{}
	once sync.Once
	err  error
}

// Start starts a worker; stop it with Stop.
func Start() *Worker {
	w := &Worker{fns: make(chan func()), done: make(chan struct{})}
	pinned := make(chan struct{})
	go func() {
		w.err = Pin()
		close(pinned)
		for fn := range w.fns {
			fn()
			w.done <- struct{}{}
		}
	}()
	<-pinned
	return w
}

// Err says why the worker runs at normal priority, if it does.
func (w *Worker) Err() error { return w.err }

// Run runs fn on the worker and returns when it has.
func (w *Worker) Run(fn func()) {
	w.fns <- fn
	<-w.done
}

// Stop ends the worker (and its thread). Run must not be called after it.
func (w *Worker) Stop() { w.once.Do(func() { close(w.fns) }) }
