// hpp_alone.cc: cwsgi.hpp compiles on its own (it includes everything it needs).
#include "cwsgi.hpp"
