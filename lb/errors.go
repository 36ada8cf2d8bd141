package lb

// DialError reports that a shard's connection could not be established
// (connection refused, dial timeout, no route to host). The request was never
// sent, so the Pool retries replayable requests on the next shard. When every
// candidate fails to dial, RoundTrip returns the last DialError.
type DialError struct {
	// Shard is the name of the shard that could not be dialled.
	Shard string
	// Err is the underlying error; errors.As finds its *net.OpError.
	Err error
}

func (e *DialError) Error() string {
	return "lb: shard " + e.Shard + ": " + e.Err.Error()
}

// Unwrap returns e.Err.
func (e *DialError) Unwrap() error { return e.Err }
