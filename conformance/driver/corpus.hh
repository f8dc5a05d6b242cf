// corpus.hh: the gunicorn HTTP/1 corpus replay as conformance cases (see corpus.cc).
#pragma once

#include <string>
#include <vector>

#include "suite.hh"

namespace conf {

/// One case per manifest entry, named "corpus-valid-001" etc. Empty, with *why set, when the
/// manifest cannot be read.
std::vector<Case> corpus_cases(const std::string &manifest_path, std::string *why);

} // namespace conf
