using System.Text;
using Spectre.Console;

namespace Sparky.Cli.Top;

/// <summary>
/// The terminal while <c>sparky top</c> runs: the alternate screen (what was on the terminal comes back when it
/// quits), no cursor, and each frame drawn whole, line by line at fixed positions, so a resize or a shorter frame
/// leaves nothing behind. Spectre renders each line's markup to ANSI in a buffer; the frame goes out in one write.
/// </summary>
internal sealed class TopScreen : IDisposable
{
    private const string Esc = "\u001b";
    private readonly StringWriter _buffer = new();
    private readonly IAnsiConsole _render;

    private TopScreen()
    {
        // Sixteen colours work over any SSH session; NO_COLOR (no-color.org) turns them off.
        bool noColor = Environment.GetEnvironmentVariable("NO_COLOR") is { Length: > 0 };
        _render = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.Yes,
            ColorSystem = noColor ? ColorSystemSupport.NoColors : ColorSystemSupport.Standard,
            Out = new AnsiConsoleOutput(_buffer),
            Interactive = InteractionSupport.No,
        });
    }

    public static TopScreen Enter()
    {
        var screen = new TopScreen();
        Console.Out.Write($"{Esc}[?1049h{Esc}[?25l{Esc}[2J");
        Console.Out.Flush();
        return screen;
    }

    /// <summary>The terminal's size now (it may have been resized since the last frame).</summary>
    public static (int Width, int Height) Size()
    {
        try { return (Math.Max(1, Console.WindowWidth), Math.Max(1, Console.WindowHeight)); }
        catch (IOException) { return (80, 24); }
    }

    public void Draw(IReadOnlyList<string> lines, int width, int height)
    {
        // Synchronised output (ignored by terminals without it): the frame appears at once, not line by line.
        var frame = new StringBuilder($"{Esc}[?2026h");
        for (int row = 0; row < height; row++)
        {
            frame.Append($"{Esc}[{row + 1};1H{Esc}[2K");
            if (row < lines.Count) frame.Append(Ansi(lines[row], width));
        }
        frame.Append($"{Esc}[?2026l");
        Console.Out.Write(frame.ToString());
        Console.Out.Flush();
    }

    private string Ansi(string markup, int width)
    {
        _buffer.GetStringBuilder().Clear();
        // A line as wide as the terminal must not get a line break after it: on the last row that would scroll the
        // screen. The view's lines fit the width; one column more keeps Spectre from wrapping at the edge.
        _render.Profile.Width = width + 1;
        _render.Markup(markup);
        return _buffer.ToString().TrimEnd('\r', '\n');
    }

    public void Dispose()
    {
        Console.Out.Write($"{Esc}[?25h{Esc}[?1049l");
        Console.Out.Flush();
    }
}
