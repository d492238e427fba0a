package server

// BreakBulkRowUpdates switches s to a deliberately broken bulk push whose
// later ops of a batch do not see what earlier ops of the same record wrote;
// the negative control of the equivalence tests.
func BreakBulkRowUpdates(s *Service) { s.bulkStaleRows = true }
