// Forwards to format/container.hpp (the file format's layer); kept so that existing includes work.
#pragma once

#include "format/container.hpp"
