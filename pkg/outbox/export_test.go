package outbox

// SetAsideTotal is the set-aside counter, for tests.
var SetAsideTotal = setAsideTotal
