"""The end-of-run summary prints the logged values, their intervals and the noise verdict the p-values give."""

from __future__ import annotations

from facebias.run.summary import summary_lines


def test_summary_lines_by_hand() -> None:
    metrics = {"test/mae": 7.4343, "test/mae_ci_low": 7.19, "test/mae_ci_high": 7.6961}
    for index, name in enumerate(("age_bias", "gender_bias", "ethnicity_bias", "expression_bias")):
        metrics |= {f"test/{name}": 1.0 + index, f"test/{name}_ci_low": 0.5, f"test/{name}_ci_high": 2.0 + index,
                    f"test/{name}_null": 0.25, f"test/{name}_p": (0.001, 0.05, 0.049, 0.6)[index],
                    f"test/{name}_debiased": 0.5 * index, f"test/{name}_debiased_ci_low": 0.0,
                    f"test/{name}_debiased_ci_high": 1.25 + index}
    lines = summary_lines(metrics, 0.95)
    assert lines[0] == ("test: mae 7.434 [7.190, 7.696], age_bias 1.000 [0.500, 2.000], gender_bias 2.000 "
                        "[0.500, 3.000], ethnicity_bias 3.000 [0.500, 4.000], expression_bias 4.000 [0.500, 5.000]")
    assert lines[1] == ("      de-biased: age 0.000 [0.000, 1.250], gender 0.500 [0.000, 2.250], ethnicity 1.000 "
                        "[0.000, 3.250], expression 1.500 [0.000, 4.250]")
    assert lines[2].startswith("      [low, high]: 95% interval over the evaluated images")
    assert lines[4:8] == [
        "  age_bias 1.000 vs. null 0.250 (p 0.001): beyond noise",
        "  gender_bias 2.000 vs. null 0.250 (p 0.050): within noise",
        "  ethnicity_bias 3.000 vs. null 0.250 (p 0.049): beyond noise",
        "  expression_bias 4.000 vs. null 0.250 (p 0.600): within noise",
    ]


def test_a_split_without_statistics_prints_plain_values() -> None:
    metrics = {f"val/{name}": 1.5 for name in ("mae", "age_bias", "gender_bias", "ethnicity_bias", "expression_bias")}
    assert summary_lines(metrics, 0.95) == [
        " val: mae 1.500, age_bias 1.500, gender_bias 1.500, ethnicity_bias 1.500, expression_bias 1.500"]
