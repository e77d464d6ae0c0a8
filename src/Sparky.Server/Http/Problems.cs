namespace Sparky.Server.Http;

/// <summary>application/problem+json answers, one line of detail a user can act on.</summary>
internal static class Problems
{
    public static IResult BadRequest(string detail) => Results.Problem(detail, statusCode: 400, title: "Bad request");
    public static IResult NotFound(string detail) => Results.Problem(detail, statusCode: 404, title: "Not found");
    public static IResult Conflict(string detail) => Results.Problem(detail, statusCode: 409, title: "Conflict");
    public static IResult TooLarge(string detail) => Results.Problem(detail, statusCode: 413, title: "Payload too large");
    public static IResult Unavailable(string detail) => Results.Problem(detail, statusCode: 503, title: "Service unavailable");
    public static IResult Of(int status, string detail) => status switch
    {
        400 => BadRequest(detail),
        404 => NotFound(detail),
        409 => Conflict(detail),
        413 => TooLarge(detail),
        503 => Unavailable(detail),
        _ => Results.Problem(detail, statusCode: status),
    };
    public static IResult Unauthorized() => Results.Problem("missing or wrong bearer token", statusCode: 401, title: "Unauthorized");
}
