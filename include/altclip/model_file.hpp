// Forwards to format/model_file.hpp (the file format's layer); kept so that existing includes work.
#pragma once

#include "format/model_file.hpp"
