// The HTML page: self-contained (no script, nothing fetched), its text carrying the results'
// numbers, its charts present; rendered by headless Chromium into a screenshot without console
// errors (skipped, saying so, when Chromium is not installed).
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "report/svg_chart.h"
#include "report_fixture.h"

namespace kvlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string html() { return testing::read_file(testing::reported_sweep().out + "/summary.html"); }

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

// The text of each <td> of the table row of run `id`.
std::vector<std::string> row_cells(const std::string& page, const std::string& id) {
  const size_t start = page.find("<tr data-id=\"" + id + "\"");
  if (start == std::string::npos) return {};
  const std::string row = page.substr(start, page.find("</tr>", start) - start);
  std::vector<std::string> cells;
  const std::regex td("<td[^>]*>(.*?)</td>");
  for (auto it = std::sregex_iterator(row.begin(), row.end(), td); it != std::sregex_iterator(); ++it)
    cells.push_back(std::regex_replace((*it)[1].str(), std::regex("<[^>]+>"), ""));
  return cells;
}

TEST(ReportHtml, IsSelfContained) {
  const std::string page = html();
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(count(page, "<script"), 0u);
  EXPECT_EQ(count(page, "<link"), 0u);
  EXPECT_EQ(count(page, "src="), 0u);
  EXPECT_EQ(count(page, "url("), 0u);
  EXPECT_EQ(count(page, "http://"), count(page, "xmlns=\"http://www.w3.org/2000/svg\""))
      << "no address but SVG's namespace";
  EXPECT_EQ(count(page, "https://"), 0u);
  EXPECT_NE(page.find("<style>"), std::string::npos);
}

TEST(ReportHtml, TextCarriesTheResultsNumbers) {
  const testing::ReportedSweep& rs = testing::reported_sweep();
  const std::string page = html();
  const json s = json::parse(testing::read_file(rs.out + "/summary.json"));
  for (const json& t : s["tasks"])
    EXPECT_NE(page.find("<li>" + html_escape(t["verdict"].get<std::string>()) + "</li>"), std::string::npos)
        << t["verdict"];
  for (const json& line : rs.lines) {
    const std::string id = line["id"];
    const std::vector<std::string> cells = row_cells(page, id);
    ASSERT_EQ(cells.size(), 14u) << id;
    const testing::ExpectedText want = testing::expected_text(line["report"]);
    const json& rep = line["report"];
    EXPECT_EQ(cells[0], id);
    EXPECT_EQ(cells[4], std::to_string(rep["memory"]["context_tokens"].get<int>()));
    EXPECT_EQ(cells[5], want.quality) << id;
    EXPECT_EQ(cells[6], want.kv_peak) << id;
    EXPECT_EQ(cells[7], format_bytes(rep["metrics"]["kv_cache"]["allocated_bytes_peak"].get<size_t>())) << id;
    EXPECT_EQ(cells[8], format_bytes(rep["memory"]["total_bytes"].get<size_t>())) << id;
    EXPECT_EQ(cells[9], want.decode) << id;
    // Each run is a point on its task's chart, its numbers in the tooltip.
    EXPECT_NE(page.find("<title>" + id + " "), std::string::npos) << id;
  }
  // Heat-map cells show the accuracy of each (length, depth), as the reports have it.
  for (const json& line : rs.lines) {
    if (line["report"]["task"] != "niah") continue;
    for (const json& cell : line["report"]["metrics"]["cells"]) {
      char tip[128];
      std::snprintf(tip, sizeof tip, "length %d, depth %g: accuracy %.3f over %d samples", cell["length"].get<int>(),
                    cell["depth"].get<double>(), cell["accuracy"].get<double>(), cell["samples"].get<int>());
      EXPECT_NE(page.find(tip), std::string::npos) << tip;
    }
  }
}

TEST(ReportHtml, HasEveryChart) {
  const std::string page = html();
  for (const char* section :
       {"id=\"verdict\"", "id=\"pareto\"", "id=\"speed\"", "id=\"memory\"", "id=\"heatmaps\"", "id=\"runs\""})
    EXPECT_NE(page.find(section), std::string::npos) << section;
  // Three tasks' accuracy-against-memory charts, one speed chart, one memory chart, six heat-maps.
  EXPECT_EQ(count(page, "<svg "), 3u + 1 + 1 + 6);
  EXPECT_EQ(count(page, "class=\"chart heatmap\""), 6u);
  EXPECT_NE(page.find("Pareto front (circled)"), std::string::npos);
  EXPECT_NE(page.find("stroke-dasharray"), std::string::npos) << "the front is drawn";
}

std::string find_chromium() {
  for (const char* name : {"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"})
    if (auto r = testing::run_command(std::string("command -v ") + name); r.exit_code == 0)
      return r.out.substr(0, r.out.find('\n'));
  return "";
}

TEST(ReportHtml, RendersInHeadlessChromium) {
  const std::string chromium = find_chromium();
  if (chromium.empty())
    GTEST_SKIP() << "chromium not found: install Debian's chromium package (scripts/setup.sh does) to render the page";
  const std::string dir = testing::temp_dir();
  const std::string flags =
      " --headless --no-sandbox --disable-gpu --disable-background-networking "
      "--disable-component-update --no-first-run --user-data-dir=" +
      dir + "/profile ";
  const std::string url = "file://" + testing::reported_sweep().out + "/summary.html";
  const std::string png = dir + "/report.png";
  auto shot = testing::run_command("timeout 120 " + chromium + flags + "--screenshot=" + png +
                                   " --window-size=1400,2000 --enable-logging=stderr --v=0 " + url);
  ASSERT_EQ(shot.exit_code, 0) << shot.err;
  ASSERT_TRUE(fs::exists(png)) << shot.err;
  const std::string image = testing::read_file(png);
  EXPECT_EQ(image.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_GT(image.size(), 20000u) << "a page with charts, not a blank one";
  // Console messages, errors included, are logged as "INFO:CONSOLE:<line>] ..." (":CONSOLE(" in older
  // builds): the page has no script to log any, and nothing may fail to load.
  EXPECT_EQ(shot.err.find(":CONSOLE"), std::string::npos) << shot.err;
  EXPECT_EQ(shot.err.find("Uncaught"), std::string::npos) << shot.err;
  std::cout << "screenshot: " << png << " (" << image.size() << " bytes)\n";

  auto dom = testing::run_command("timeout 120 " + chromium + flags + "--dump-dom " + url);
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  EXPECT_EQ(count(dom.out, "<svg "), 11u) << "every chart reached the DOM";
  EXPECT_NE(dom.out.find("<h2>Verdict</h2>"), std::string::npos);
  for (const json& line : testing::reported_sweep().lines)
    EXPECT_NE(dom.out.find("<tr data-id=\"" + line["id"].get<std::string>() + "\""), std::string::npos);
}

}  // namespace
}  // namespace kvlab
