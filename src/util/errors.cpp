#include "util/errors.h"

namespace qrobust {

std::string first_line(const std::string& message) {
  return message.substr(0, message.find('\n'));
}

}  // namespace qrobust
