using System.Globalization;
using System.Text;
using Spectre.Console;

namespace Sparky.Cli;

/// <summary>
/// Text a task controls (its id, name, class, progress message) put on a terminal: shown as text, never obeyed as
/// Spectre markup or as a terminal control sequence, and fitted to a number of columns.
/// </summary>
internal static class TermText
{
    /// <summary>Control characters as visible symbols (ESC as ␛, a newline as ␊): an ANSI sequence in a task's name is
    /// printed, not run, and a line break cannot break the layout. Not escaped for markup: see <see cref="Cell"/>.</summary>
    public static string Visible(string? s)
    {
        if (string.IsNullOrEmpty(s)) return "";
        if (!s.Any(char.IsControl)) return s;
        var b = new StringBuilder(s.Length);
        foreach (var c in s)
            b.Append(c < 0x20 ? (char)(0x2400 + c) : c == 0x7f ? '\u2421' : char.IsControl(c) ? '\uFFFD' : c);
        return b.ToString();
    }

    /// <summary>The columns <paramref name="s"/> takes on a terminal (a wide CJK character takes two).</summary>
    public static int Width(string s) => s.GetCellWidth();

    /// <summary><paramref name="s"/> cut to <paramref name="width"/> columns, ending in … where it was cut.</summary>
    public static string Clip(string s, int width)
    {
        if (width <= 0) return "";
        if (Width(s) <= width) return s;
        var b = new StringBuilder();
        int used = 0;
        // By text element, so a surrogate pair or a combining mark is never split.
        var e = StringInfo.GetTextElementEnumerator(s);
        while (e.MoveNext())
        {
            var element = (string)e.Current;
            int w = Width(element);
            if (used + w > width - 1) break;
            b.Append(element);
            used += w;
        }
        return b.Append('…').ToString();
    }

    /// <summary><paramref name="s"/> clipped and padded to exactly <paramref name="width"/> columns (right-aligned on request).</summary>
    public static string Fit(string s, int width, bool right = false)
    {
        var clipped = Clip(s, width);
        var pad = new string(' ', Math.Max(0, width - Width(clipped)));
        return right ? pad + clipped : clipped + pad;
    }

    /// <summary>A value from the daemon or a task as one markup-safe cell: visible, fitted, then escaped.</summary>
    public static string Cell(string? s, int width, bool right = false) => Markup.Escape(Fit(Visible(s), width, right));

    /// <summary>A bar of <paramref name="width"/> columns filled to <paramref name="fraction"/> (0..1).</summary>
    public static string Bar(double fraction, int width)
    {
        if (width <= 0) return "";
        int filled = (int)Math.Round(Math.Clamp(double.IsFinite(fraction) ? fraction : 0, 0, 1) * width);
        return new string('█', filled) + new string('░', width - filled);
    }

    /// <summary>A markup line cut to the width where it is wider (a terminal too narrow for the columns): its text, without
    /// its colours, cut. Everything a task controls in it was escaped, so its text is what the screen would show.</summary>
    public static string FitMarkup(string markupLine, int width)
    {
        var plain = Markup.Remove(markupLine);
        return Width(plain) <= width ? markupLine : Markup.Escape(Clip(plain, width));
    }
}
